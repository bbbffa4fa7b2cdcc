// Plays order lives as an order app would, and checks what the receiver got against the outbox.
import assert from 'node:assert/strict';
import type { TestDatabase } from './db.ts';
import type { Received } from './receiver.ts';

/** The events one `playOrder` causes, in order. */
export const ORDER_LIFE = ['OrderCreated', 'OrderAccepted', 'OrderDueDateUpdated', 'OrderSigned'];

/** created → accepted → due date moved → signed, each its own transaction. */
export async function playOrder(db: TestDatabase, orderId?: string): Promise<string> {
  const rows = await db.query<{ id: string }>(
    "INSERT INTO orders (id, state) VALUES (coalesce($1::uuid, gen_random_uuid()), 'created') RETURNING id",
    [orderId ?? null],
  );
  const id = rows[0]!.id;
  await db.query("UPDATE orders SET state = 'accepted' WHERE id = $1", [id]);
  await db.query("UPDATE orders SET due_date = '2027-06-30' WHERE id = $1", [id]);
  await db.query("UPDATE orders SET state = 'signed' WHERE id = $1", [id]);
  return id;
}

/** Plays `count` orders, `parallel` at a time. */
export async function playOrders(db: TestDatabase, count: number, parallel = 4): Promise<string[]> {
  const ids: string[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < count) {
        next++;
        ids.push(await playOrder(db));
      }
    }),
  );
  return ids;
}

export interface DeliveryCheck {
  events: number;
  delivered: number;
  duplicates: number;
  /** Event ids received more than once. */
  duplicated: string[];
}

/**
 * Checks that every outbox event reached the receiver, that per order the first arrivals follow
 * the outbox order, and that a repeated delivery always carries a higher attempt number (so it
 * was a retry after a lost result, never two instances sending the same attempt).
 */
export async function checkDeliveries(
  db: TestDatabase,
  requests: readonly Received[],
  orderIds?: readonly string[],
): Promise<DeliveryCheck> {
  const rows = await db.query<{ event_id: string; order_id: string; event_type: string; status: string }>(
    'SELECT event_id::text, order_id, event_type, status FROM order_webhooks.outbox ORDER BY id',
  );
  const unprocessed = await db.query('SELECT id FROM order_webhooks.change');
  assert.equal(unprocessed.length, 0, 'every journal row moved to the outbox');
  const byEvent = new Map<string, Received[]>();
  for (const request of requests) {
    const id = request.headers['x-event-id'] as string;
    byEvent.set(id, [...(byEvent.get(id) ?? []), request]);
  }
  const lost = rows.filter((row) => !byEvent.has(row.event_id));
  assert.deepEqual(
    lost.map((r) => `${r.order_id} ${r.event_type}`),
    [],
    'no event lost',
  );
  assert.ok(
    rows.every((row) => row.status === 'delivered'),
    'every event delivered',
  );
  if (orderIds) {
    for (const orderId of orderIds) {
      const types = rows.filter((r) => r.order_id === orderId).map((r) => r.event_type);
      assert.deepEqual(types, ORDER_LIFE, `events of order ${orderId}`);
    }
  }
  // Per order: first arrivals in outbox order.
  const firstArrival = new Map<string, number>();
  requests.forEach((request, index) => {
    const id = request.headers['x-event-id'] as string;
    if (!firstArrival.has(id)) firstArrival.set(id, index);
  });
  const orders = new Map<string, number[]>();
  for (const row of rows) orders.set(row.order_id, [...(orders.get(row.order_id) ?? []), firstArrival.get(row.event_id)!]);
  for (const [orderId, arrivals] of orders) {
    assert.deepEqual(
      arrivals,
      [...arrivals].sort((a, b) => a - b),
      `order ${orderId} delivered in order`,
    );
  }
  const duplicated: string[] = [];
  for (const [id, copies] of byEvent) {
    if (copies.length < 2) continue;
    duplicated.push(id);
    const attempts = copies.map((c) => Number(c.headers['x-event-attempt']));
    assert.equal(new Set(attempts).size, attempts.length, `event ${id} sent twice with the same attempt number: ${attempts}`);
  }
  return {
    events: rows.length,
    delivered: rows.filter((r) => r.status === 'delivered').length,
    duplicates: requests.length - byEvent.size,
    duplicated,
  };
}
