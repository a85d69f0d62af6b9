import { describe, expect, test } from "bun:test";
import { MAX_INTEGER } from "@checkout/common/limits";
import { expectAppError } from "../../common/test/support/errors";
import { charged, credited } from "../src/payment";

describe("charged", () => {
  test("takes the amount off the credit", () => {
    expect(charged({ credit: 10 }, "u", 4)).toEqual({ credit: 6 });
  });

  test("may take the credit down to exactly zero", () => {
    expect(charged({ credit: 4 }, "u", 4)).toEqual({ credit: 0 });
  });

  test("of zero leaves the credit as it is", () => {
    expect(charged({ credit: 4 }, "u", 0)).toEqual({ credit: 4 });
  });

  test("beyond the credit is refused as insufficient_credit", () => {
    expectAppError(charged({ credit: 3 }, "u", 4), 409, "insufficient_credit");
  });

  test("of an unknown user is unknown_user", () => {
    expectAppError(charged(null, "u", 1), 404, "unknown_user");
  });
});

describe("credited", () => {
  test("adds the amount to the credit", () => {
    expect(credited({ credit: 10 }, "u", 5)).toEqual({ credit: 15 });
  });

  test("up to exactly 2^53-1 is allowed", () => {
    expect(credited({ credit: MAX_INTEGER - 5 }, "u", 5)).toEqual({ credit: MAX_INTEGER });
  });

  test("beyond 2^53-1 is invalid input", () => {
    expectAppError(credited({ credit: MAX_INTEGER }, "u", 1), 400, "invalid_input");
    expectAppError(credited({ credit: MAX_INTEGER - 1 }, "u", MAX_INTEGER), 400, "invalid_input");
  });

  test("to an unknown user is unknown_user", () => {
    expectAppError(credited(null, "u", 1), 404, "unknown_user");
  });
});
