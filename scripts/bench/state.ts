/** Reads items, users and orders back through the public API, many at a time. */
import { type Api, mapLimited, SIDE_CONCURRENCY } from "./client";
import { itemBody, orderBody, userBody } from "./schemas";
import type { OrderState } from "./verify";

/** Current stock by item id; items that are not found are left out. */
export async function readStock(api: Api, itemIds: readonly string[]): Promise<Map<string, number>> {
  const found = await mapLimited(itemIds, SIDE_CONCURRENCY, (id) => api.get(`/stock/find/${id}`, itemBody));
  return collect(itemIds, found, (item) => item.stock);
}

/** Current credit by user id; users that are not found are left out. */
export async function readCredit(api: Api, userIds: readonly string[]): Promise<Map<string, number>> {
  const found = await mapLimited(userIds, SIDE_CONCURRENCY, (id) => api.get(`/payment/find_user/${id}`, userBody));
  return collect(userIds, found, (user) => user.credit);
}

/** The orders that exist among `orderIds`. */
export async function readOrders(api: Api, orderIds: readonly string[]): Promise<OrderState[]> {
  const found = await mapLimited(orderIds, SIDE_CONCURRENCY, (id) => api.get(`/orders/find/${id}`, orderBody));
  const orders: OrderState[] = [];
  found.forEach((order, i) => {
    if (order) {
      orders.push({
        orderId: orderIds[i] as string,
        paid: order.paid,
        items: order.items,
        userId: order.user_id,
        totalCost: order.total_cost,
      });
    }
  });
  return orders;
}

function collect<T>(
  ids: readonly string[],
  found: readonly (T | undefined)[],
  value: (t: T) => number,
): Map<string, number> {
  const map = new Map<string, number>();
  found.forEach((entity, i) => {
    if (entity !== undefined) map.set(ids[i] as string, value(entity));
  });
  return map;
}

/** Distinct item and user ids referenced by `orders`, for reading back exactly what a run touched. */
export function touchedBy(orders: readonly OrderState[]): { itemIds: string[]; userIds: string[] } {
  const items = new Set<string>();
  const users = new Set<string>();
  for (const order of orders) {
    users.add(order.userId);
    for (const [itemId] of order.items) items.add(itemId);
  }
  return { itemIds: [...items], userIds: [...users] };
}
