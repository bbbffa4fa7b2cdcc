// The demo's stand-in for an order application: its orders table and the statements it runs.
// It knows nothing of order-webhooks; it only writes its own table over its own connection.
import type pg from 'pg';

/** Shaped like a real order app's table: the service only reads `id`, `state` and `due_date`. */
export const CREATE_ORDERS_TABLE = `
CREATE TABLE orders (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  reference   text NOT NULL UNIQUE,
  customer    text NOT NULL,
  amount      numeric(12, 2) NOT NULL,
  currency    char(3) NOT NULL DEFAULT 'EUR',
  state       text NOT NULL DEFAULT 'created',
  due_date    date,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
)`;

/** The order app's table as the config's `orders` section names it. */
export const ORDERS_CONFIG = { table: 'orders', idColumn: 'id', stateColumn: 'state', dueDateColumn: 'due_date' };

export class OrderApp {
  /** Order id → the reference people use, to print webhooks readably. */
  readonly references = new Map<string, string>();

  constructor(private readonly client: pg.Client) {}

  async createTable(): Promise<void> {
    await this.client.query(CREATE_ORDERS_TABLE);
  }

  /** A new order, due in `dueInDays` days (negative: already overdue). */
  async create(reference: string, customer: string, amount: string, dueInDays: number): Promise<string> {
    const { rows } = await this.client.query<{ id: string }>(
      `INSERT INTO orders (reference, customer, amount, due_date)
       VALUES ($1, $2, $3, current_date + $4::int) RETURNING id`,
      [reference, customer, amount, dueInDays],
    );
    const id = rows[0]!.id;
    this.references.set(id, reference);
    return id;
  }

  async setState(reference: string, state: string): Promise<void> {
    await this.client.query('UPDATE orders SET state = $2, updated_at = now() WHERE reference = $1', [reference, state]);
  }

  async moveDueDate(reference: string, days: number): Promise<void> {
    await this.client.query('UPDATE orders SET due_date = due_date + $2::int, updated_at = now() WHERE reference = $1', [reference, days]);
  }

  async changeAmount(reference: string, amount: string): Promise<void> {
    await this.client.query('UPDATE orders SET amount = $2, updated_at = now() WHERE reference = $1', [reference, amount]);
  }

  /** The nightly job: open orders past their due date expire. Returns how many did. */
  async expireOverdue(): Promise<number> {
    const { rowCount } = await this.client.query(
      "UPDATE orders SET state = 'expired', updated_at = now() WHERE state = 'created' AND due_date < current_date",
    );
    return rowCount ?? 0;
  }
}
