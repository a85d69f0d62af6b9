/** The payment service over real HTTP, on its own real Redis: the public API and the saga steps. */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { keys } from "@checkout/common/keyspace";
import { internalAuthorization, STEPS_PATH } from "@checkout/common/internal";
import { call, errorBody, get, post, step, stepCall, TEST_INTERNAL_SECRET } from "../../common/test/support/http";
import { without } from "../../common/test/support/redis-state";
import { serviceOnItsOwnRedis } from "../../common/test/support/service";

/** Real servers on a shared machine: generous, so that load elsewhere never fails a test by time alone. */
setDefaultTimeout(30_000);

const MAX = Number.MAX_SAFE_INTEGER;

const { url, state } = serviceOnItsOwnRedis("payment");

async function newUser(credit = 0): Promise<string> {
  const { body } = await post(url("/create_user"));
  if (credit > 0) await post(url(`/add_funds/${body.user_id}/${credit}`));
  return body.user_id;
}

const creditOf = async (id: string): Promise<number> => (await get(url(`/find_user/${id}`))).body.credit;
const charge = (op: string, user_id: string, amount: number) => step(url(""), "charge", op, { user_id, amount });
const refund = (op: string, user_id: string, amount: number) => step(url(""), "refund", op, { user_id, amount });

describe("public endpoints", () => {
  test("create_user makes a user with credit 0", async () => {
    const created = await post(url("/create_user"));
    expect(created).toEqual({ status: 200, body: { user_id: expect.any(String) } });
    expect(await get(url(`/find_user/${created.body.user_id}`))).toEqual({
      status: 200,
      body: { user_id: created.body.user_id, credit: 0 },
    });
  });

  test("find_user of an unknown user is 404 unknown_user", async () => {
    expect(await get(url("/find_user/no-such-user"))).toEqual({ status: 404, body: errorBody("unknown_user") });
  });

  test("add_funds answers done and the new credit", async () => {
    const id = await newUser();
    expect(await post(url(`/add_funds/${id}/30`))).toEqual({ status: 200, body: { done: true, credit: 30 } });
    expect(await post(url(`/add_funds/${id}/12`))).toEqual({ status: 200, body: { done: true, credit: 42 } });
    expect(await creditOf(id)).toBe(42);
  });

  test("pay answers the user and the new credit", async () => {
    const id = await newUser(10);
    expect(await post(url(`/pay/${id}/4`))).toEqual({ status: 200, body: { user_id: id, credit: 6 } });
    expect(await creditOf(id)).toBe(6);
  });

  test("pay down to exactly 0 is allowed", async () => {
    const id = await newUser(4);
    expect(await post(url(`/pay/${id}/4`))).toEqual({ status: 200, body: { user_id: id, credit: 0 } });
  });

  test("pay beyond the credit is 409 insufficient_credit and changes nothing", async () => {
    const id = await newUser(3);
    const before = await state();
    expect(await post(url(`/pay/${id}/4`))).toEqual({ status: 409, body: errorBody("insufficient_credit") });
    expect(without(await state(), keys.seq)).toEqual(without(before, keys.seq));
    expect(await creditOf(id)).toBe(3);
  });

  test("add_funds and pay of an unknown user are 404 unknown_user and create nothing", async () => {
    const before = await state();
    expect(await post(url("/add_funds/no-such-user/1"))).toEqual({ status: 404, body: errorBody("unknown_user") });
    expect(await post(url("/pay/no-such-user/1"))).toEqual({ status: 404, body: errorBody("unknown_user") });
    expect(without(await state(), keys.seq)).toEqual(without(before, keys.seq));
  });

  test("add_funds beyond 2^53-1 is 400 and changes nothing", async () => {
    const id = await newUser(10);
    expect(await post(url(`/add_funds/${id}/${MAX}`))).toEqual({ status: 400, body: errorBody("invalid_input") });
    expect(await creditOf(id)).toBe(10);
  });

  test("batch_init creates users '0' … 'n-1' with the given credit", async () => {
    expect(await post(url("/batch_init/3/50"))).toEqual({ status: 200, body: { msg: expect.any(String) } });
    for (const id of ["0", "1", "2"])
      expect(await get(url(`/find_user/${id}`))).toEqual({ status: 200, body: { user_id: id, credit: 50 } });
    expect((await get(url("/find_user/3"))).status).toBe(404);
  });

  test("200 concurrent pays of 1 from a credit of 100: exactly 100 succeed and the credit ends at 0", async () => {
    const id = await newUser(100);
    const answers = await Promise.all(Array.from({ length: 200 }, () => post(url(`/pay/${id}/1`))));
    expect(answers.filter((a) => a.status === 200).length).toBe(100);
    expect(answers.filter((a) => a.status === 409).length).toBe(100);
    expect(await creditOf(id)).toBe(0);
  });

  test("100 concurrent add_funds of 1 all count", async () => {
    const id = await newUser();
    const answers = await Promise.all(Array.from({ length: 100 }, () => post(url(`/add_funds/${id}/1`))));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    expect(await creditOf(id)).toBe(100);
  });
});

describe("invalid input", () => {
  const tooLong = "x".repeat(65);
  const cases: Array<[method: "GET" | "POST", path: string]> = [
    ["GET", `/find_user/${tooLong}`],
    ["GET", "/find_user/a%20b"],
    ["GET", "/find_user/a%2Fb"],
    ["POST", "/add_funds/0/-1"],
    ["POST", "/add_funds/0/abc"],
    ["POST", "/add_funds/0/1.5"],
    ["POST", "/add_funds/0/1e3"],
    ["POST", "/add_funds/0/9007199254740992"],
    ["POST", `/add_funds/${tooLong}/1`],
    ["POST", "/pay/0/-1"],
    ["POST", "/pay/0/abc"],
    ["POST", "/pay/0/9007199254740992"],
    ["POST", `/pay/${tooLong}/1`],
    ["POST", "/batch_init/-1/1"],
    ["POST", "/batch_init/abc/1"],
    ["POST", "/batch_init/1000001/1"],
    ["POST", "/batch_init/1/-1"],
    ["POST", "/batch_init/1/9007199254740992"],
  ];

  test.each(cases)("%s %s is 400 invalid_input and changes nothing", async (method, path) => {
    const before = await state();
    const answer = method === "GET" ? await get(url(path)) : await post(url(path));
    expect(answer).toEqual({ status: 400, body: errorBody("invalid_input") });
    expect(await state()).toEqual(before);
  });

  const badSteps: Array<[action: string, opId: string, fields: Record<string, unknown>]> = [
    ["charge", "no-attempt", { user_id: "0", amount: 1 }],
    ["charge", "o:1", { user_id: "0", amount: -1 }],
    ["charge", "o:1", { user_id: "0", amount: 1.5 }],
    ["charge", "o:1", { user_id: "0", amount: "1" }],
    ["charge", "o:1", { user_id: "a/b", amount: 1 }],
    ["charge", "o:1", { amount: 1 }],
    ["refund", "o:1", { user_id: "0", amount: MAX + 1 }],
    ["refund", "no-attempt", { user_id: "0", amount: 1 }],
    ["take", "o:1", { user_id: "0", amount: 1 }],
  ];

  test.each(badSteps)(
    "a %s step for %s with %j is answered 400 invalid_input and changes nothing",
    async (action, opId, fields) => {
      const before = await state();
      expect(await step(url(""), action, opId, fields)).toEqual({ status: 400, body: errorBody("invalid_input") });
      expect(await state()).toEqual(before);
    },
  );

  test.each([[{ steps: [] }], [{}]])("a call with %j is 400 invalid_input and changes nothing", async (body) => {
    const before = await state();
    expect(await stepCall(url(""), body)).toEqual({ status: 400, body: errorBody("invalid_input") });
    expect(await state()).toEqual(before);
  });
});

describe("saga steps answer only the order service", () => {
  const calls: Array<[what: string, headers: Record<string, string>]> = [
    ["no credential", {}],
    ["another secret", internalAuthorization(`${TEST_INTERNAL_SECRET}x`)],
    ["the secret without its scheme", { authorization: TEST_INTERNAL_SECRET }],
    ["a header the gateway used to set", { "x-via-gateway": "0" }],
  ];

  test.each(calls)("a charge with %s is refused 401 unauthorized and charges nothing", async (_what, headers) => {
    const u = await newUser(10);
    const before = await state();
    const body = { steps: [{ action: "charge", op_id: "intruder:1", user_id: u, amount: 4 }] };
    expect(await call("POST", url(STEPS_PATH), body, headers)).toEqual({
      status: 401,
      body: errorBody("unauthorized"),
    });
    expect(await state()).toEqual(before);
    expect(await creditOf(u)).toBe(10);
  });
});

describe("saga steps: charge and refund", () => {
  test("charge takes the amount and answers applied", async () => {
    const u = await newUser(10);
    expect(await charge("c1:1", u, 4)).toEqual({ status: 200, body: { outcome: "applied" } });
    expect(await creditOf(u)).toBe(6);
  });

  test("a repeated charge answers applied again and charges nothing more", async () => {
    const u = await newUser(10);
    await charge("c2:1", u, 4);
    expect(await charge("c2:1", u, 4)).toEqual({ status: 200, body: { outcome: "applied" } });
    expect(await creditOf(u)).toBe(6);
  });

  test("20 concurrent copies of one charge charge once", async () => {
    const u = await newUser(10);
    const answers = await Promise.all(Array.from({ length: 20 }, () => charge("c3:1", u, 4)));
    expect(answers.every((a) => a.status === 200 && a.body.outcome === "applied")).toBe(true);
    expect(await creditOf(u)).toBe(6);
  });

  test("a charge beyond the credit is 409 insufficient_credit, and stays refused once funds arrive", async () => {
    const u = await newUser(3);
    expect(await charge("c4:1", u, 4)).toEqual({ status: 409, body: errorBody("insufficient_credit") });
    await post(url(`/add_funds/${u}/10`));
    expect(await charge("c4:1", u, 4)).toEqual({ status: 409, body: errorBody("insufficient_credit") });
    expect(await creditOf(u)).toBe(13);
  });

  test("a charge of an unknown user is 404 unknown_user", async () => {
    expect(await charge("c5:1", "no-such-user", 1)).toEqual({ status: 404, body: errorBody("unknown_user") });
  });

  test("refund gives back what its charge took, once", async () => {
    const u = await newUser(10);
    await charge("f1:1", u, 4);
    expect(await refund("f1:1", u, 4)).toEqual({ status: 200, body: { outcome: "compensated" } });
    expect(await creditOf(u)).toBe(10);
    expect(await refund("f1:1", u, 4)).toEqual({ status: 200, body: { outcome: "compensated" } });
    expect(await creditOf(u)).toBe(10);
  });

  test("a refund that would take the credit past 2^53-1 is refused and changes nothing; sent again once it fits, it is applied", async () => {
    const u = await newUser(10);
    await charge("f9:1", u, 4);
    await post(url(`/add_funds/${u}/${MAX - 8}`));
    expect(await refund("f9:1", u, 4)).toEqual({ status: 400, body: errorBody("invalid_input") });
    expect(await creditOf(u)).toBe(MAX - 2);
    await post(url(`/pay/${u}/10`));
    expect(await refund("f9:1", u, 4)).toEqual({ status: 200, body: { outcome: "compensated" } });
    expect(await creditOf(u)).toBe(MAX - 8);
  });

  test("a charge after its refund is 409 operation_cancelled and charges nothing", async () => {
    const u = await newUser(10);
    await charge("f2:1", u, 4);
    await refund("f2:1", u, 4);
    expect(await charge("f2:1", u, 4)).toEqual({ status: 409, body: errorBody("operation_cancelled") });
    expect(await creditOf(u)).toBe(10);
  });

  test("a refund that arrives before its charge fences it: the charge is 409 operation_cancelled and the credit is unchanged", async () => {
    const u = await newUser(10);
    expect(await refund("f3:1", u, 4)).toEqual({ status: 200, body: { outcome: "cancelled" } });
    expect(await creditOf(u)).toBe(10);
    expect(await charge("f3:1", u, 4)).toEqual({ status: 409, body: errorBody("operation_cancelled") });
    expect(await creditOf(u)).toBe(10);
  });

  test("refund of a refused charge changes nothing", async () => {
    const u = await newUser(1);
    await charge("f4:1", u, 4);
    expect(await refund("f4:1", u, 4)).toEqual({ status: 200, body: { outcome: "refused" } });
    expect(await creditOf(u)).toBe(1);
  });

  test("a refund that names another amount than its charge is 400 and changes nothing", async () => {
    const u = await newUser(10);
    await charge("f5:1", u, 4);
    const before = await state();
    expect(await refund("f5:1", u, 5)).toEqual({ status: 400, body: errorBody("invalid_input") });
    expect(without(await state(), keys.seq)).toEqual(without(before, keys.seq));
    expect(await creditOf(u)).toBe(6);
  });

  test("a refund that names another user than its charge is 400 and changes nothing", async () => {
    const [u, other] = [await newUser(10), await newUser(10)];
    await charge("f6:1", u, 4);
    expect((await refund("f6:1", other, 4)).status).toBe(400);
    expect([await creditOf(u), await creditOf(other)]).toEqual([6, 10]);
  });
});
