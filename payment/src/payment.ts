/**
 * Users and their credit: pure rules, and the state changes on Redis that apply them.
 * Credit never goes below zero, nor above MAX_INTEGER.
 */
import { AppError, badInput, found, refused, unknown } from "@checkout/common/errors";
import { MAX_INTEGER } from "@checkout/common/limits";
import { keys } from "@checkout/common/keyspace";
import type { Writes } from "@checkout/common/log";
import type { StepRetention } from "@checkout/common/retention";
import { participantSteps, type StepAnswer } from "@checkout/common/saga-step";
import type { Codec, Store } from "@checkout/common/store";

export type User = { credit: number };

export const userCodec: Codec<User> = {
  encode: (user) => ({ credit: String(user.credit) }),
  decode: (hash) => ({ credit: Number(hash.credit) }),
};

// ---- pure rules ----

export function credited(user: User | null, id: string, amount: number): User | AppError {
  if (!user) return unknown("user", id);
  if (user.credit + amount > MAX_INTEGER) return badInput(`credit of user ${id} would exceed ${MAX_INTEGER}`);
  return { credit: user.credit + amount };
}

export function charged(user: User | null, id: string, amount: number): User | AppError {
  if (!user) return unknown("user", id);
  if (user.credit < amount)
    return refused("insufficient_credit", `user ${id} has credit ${user.credit}, ${amount} requested`);
  return { credit: user.credit - amount };
}

function userWrite(id: string, next: User | AppError): Writes | AppError {
  return next instanceof AppError ? next : { [keys.user(id)]: userCodec.encode(next) };
}

// ---- state changes ----

export function createPayment(store: Store, retention: StepRetention) {
  const steps = participantSteps(store, retention);
  const userIn = (hash: Parameters<Codec<User>["decode"]>[0] | null | undefined) =>
    hash ? userCodec.decode(hash) : null;

  return {
    async create(): Promise<string> {
      const id = crypto.randomUUID();
      await store.change("payment.create_user", keys.user(id), userCodec, () => ({ credit: 0 }));
      return id;
    },

    find: async (id: string): Promise<User> => userCodec.decode(found("user", id, await store.read(keys.user(id)))),

    addFunds: (id: string, amount: number) =>
      store.change("payment.add_funds", keys.user(id), userCodec, (u) => credited(u, id, amount)),
    pay: (id: string, amount: number) =>
      store.change("payment.pay", keys.user(id), userCodec, (u) => charged(u, id, amount)),

    async batchInit(count: number, credit: number): Promise<void> {
      const hash = userCodec.encode({ credit });
      await store.writeMany(
        "payment.batch_init",
        Array.from({ length: count }, (_, i) => [keys.user(String(i)), hash] as const),
      );
    },

    /** Saga step: charges an order's total once per operation id. */
    charge(opId: string, userId: string, amount: number): Promise<StepAnswer> {
      const userKey = keys.user(userId);
      const payload = { user_id: userId, amount: String(amount) };
      return steps.forward("payment.charge", opId, [userKey], payload, (snapshot) =>
        userWrite(userId, charged(userIn(snapshot.get(userKey)), userId, amount)),
      );
    },

    /** Compensation of `charge`: refunds exactly what that operation charged, at most once. */
    refund(opId: string, userId: string, amount: number): Promise<StepAnswer> {
      const userKey = keys.user(userId);
      const payload = { user_id: userId, amount: String(amount) };
      return steps.compensate("payment.refund", opId, [userKey], payload, (applied, snapshot) => {
        if (applied.user_id !== userId || applied.amount !== payload.amount) {
          throw badInput(`operation ${opId} charged another user or amount than the refund names`);
        }
        return userWrite(userId, credited(userIn(snapshot.get(userKey)), userId, amount));
      });
    },
  };
}

export type PaymentService = ReturnType<typeof createPayment>;
