/** Payment routes: validation and HTTP shapes only; the rules live in payment.ts. */
import {
  batchInitCount,
  createApp,
  documented,
  entityId,
  messageBody,
  nonNegativeInteger,
  validJson,
  validParams,
} from "@checkout/common/http";
import { answerSteps, internalOnly, paymentStep, STEPS_PATH, stepsBody } from "@checkout/common/internal";
import { z } from "zod";
import type { PaymentService } from "./payment";

const userId = z.object({ user_id: entityId("user_id") });
const userAmount = z.object({ user_id: entityId("user_id"), amount: nonNegativeInteger("amount") });
const userCredit = z.object({ user_id: z.string(), credit: z.number().int() });

export function paymentApp(payment: PaymentService, internalSecret: string) {
  const app = createApp("payment");

  app.post("/create_user", documented("Creates a user with no credit", z.object({ user_id: z.string() })), async (c) =>
    c.json({ user_id: await payment.create() }),
  );

  app.get(
    "/find_user/:user_id",
    documented("A user's credit", userCredit, "404 unknown_user"),
    validParams(userId),
    async (c) => {
      const { user_id } = c.req.valid("param");
      return c.json({ user_id, credit: (await payment.find(user_id)).credit });
    },
  );

  app.post(
    "/add_funds/:user_id/:amount",
    documented(
      "Adds credit to a user",
      z.object({ done: z.literal(true), credit: z.number().int() }),
      "404 unknown_user",
    ),
    validParams(userAmount),
    async (c) => {
      const { user_id, amount } = c.req.valid("param");
      return c.json({ done: true, credit: (await payment.addFunds(user_id, amount)).credit });
    },
  );

  app.post(
    "/pay/:user_id/:amount",
    documented("Takes credit from a user", userCredit, "404 unknown_user; 409 insufficient_credit"),
    validParams(userAmount),
    async (c) => {
      const { user_id, amount } = c.req.valid("param");
      return c.json({ user_id, credit: (await payment.pay(user_id, amount)).credit });
    },
  );

  app.post(
    "/batch_init/:n/:starting_money",
    documented('Creates (or resets) users "0" to "n-1", each with this credit', messageBody),
    validParams(
      z.object({
        n: batchInitCount(),
        starting_money: nonNegativeInteger("starting_money"),
      }),
    ),
    async (c) => {
      const { n, starting_money } = c.req.valid("param");
      await payment.batchInit(n, starting_money);
      return c.json({ msg: `${n} users created with credit ${starting_money}` });
    },
  );

  app.use("/internal/*", internalOnly(internalSecret));

  app.post(STEPS_PATH, validJson(stepsBody), (c) =>
    answerSteps(c, c.req.valid("json").steps, paymentStep, (step) =>
      step.action === "charge"
        ? payment.charge(step.op_id, step.user_id, step.amount)
        : payment.refund(step.op_id, step.user_id, step.amount),
    ),
  );

  return app;
}
