/** For the stock service's test files: the service on its own real Redis, and the helpers they share. */
import { get, post } from "../../../common/test/support/http";
import { serviceOnItsOwnRedis } from "../../../common/test/support/service";

/** serviceOnItsOwnRedis("stock"), with an item maker and a stock reader on it. */
export function stockOnItsOwnRedis() {
  const service = serviceOnItsOwnRedis("stock");
  const { url } = service;

  async function newItem(price: number, units = 0): Promise<string> {
    const { body } = await post(url(`/item/create/${price}`));
    if (units > 0) await post(url(`/add/${body.item_id}/${units}`));
    return body.item_id;
  }

  const stockOf = async (id: string): Promise<number> => (await get(url(`/find/${id}`))).body.stock;

  return { ...service, newItem, stockOf };
}
