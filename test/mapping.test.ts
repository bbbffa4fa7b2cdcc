import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Change, eventBody, eventForTransition, mapChange } from '../src/mapping/mapping.ts';
import { eventId } from '../src/mapping/eventId.ts';

const update = (oldState: string | null, newState: string | null, oldDue: string | null = null, newDue: string | null = null): Change => ({
  id: '1',
  orderId: 'o-1',
  op: 'UPDATE',
  oldState,
  newState,
  oldDueDate: oldDue,
  newDueDate: newDue,
});

describe('mapping', () => {
  it('maps an INSERT to OrderCreated only, whatever its state', () => {
    const insert: Change = { ...update(null, 'accepted', null, '2027-01-01'), op: 'INSERT' };
    assert.deepEqual(mapChange(insert).events, ['OrderCreated']);
  });

  it('maps default states case-insensitively, both spellings of canceled', () => {
    const cases: [string, string][] = [
      ['accepted', 'OrderAccepted'],
      ['SIGNED', 'OrderSigned'],
      ['Rejected', 'OrderRejected'],
      ['canceled', 'OrderCanceled'],
      ['CANCELLED', 'OrderCanceled'],
      ['expired', 'OrderExpired'],
      ['OrderAccepted', 'OrderAccepted'],
    ];
    for (const [state, event] of cases) assert.deepEqual(mapChange(update('created', state)).events, [event], state);
  });

  it('sends nothing for a new state with no rule, and counts it', () => {
    const mapped = mapChange(update('created', 'in_review'));
    assert.deepEqual(mapped.events, []);
    assert.equal(mapped.unmatchedState, true);
  });

  it('maps a due date change, and both changes in one UPDATE state first', () => {
    assert.deepEqual(mapChange(update('a', 'a', '2027-01-01', '2027-02-01')).events, ['OrderDueDateUpdated']);
    assert.deepEqual(mapChange(update('created', 'signed', null, '2027-02-01')).events, ['OrderSigned', 'OrderDueDateUpdated']);
  });

  it('sends nothing when neither state nor due date changed', () => {
    assert.deepEqual(mapChange(update('signed', 'signed', 'x', 'x')).events, []);
    assert.equal(mapChange(update('signed', 'signed')).unmatchedState, false);
  });

  it('uses configured rules instead of the defaults, first match wins', () => {
    const rules = [
      { from: 'draft', to: 'open', event: 'OrderCreated' as const },
      { from: ['open', 'pending'], to: 'done', event: 'OrderSigned' as const },
      { to: 'done', event: 'OrderAccepted' as const },
      { from: '*', to: ['dead', 'gone'], event: 'OrderExpired' as const },
    ];
    assert.equal(eventForTransition('draft', 'open', rules), 'OrderCreated');
    assert.equal(eventForTransition('pending', 'done', rules), 'OrderSigned');
    assert.equal(eventForTransition('draft', 'done', rules), 'OrderAccepted');
    assert.equal(eventForTransition(null, 'gone', rules), 'OrderExpired');
    // The defaults no longer apply once rules are configured.
    assert.equal(eventForTransition('open', 'accepted', rules), undefined);
    // `*` as `to` matches any state, a specific state never matches null.
    assert.equal(eventForTransition('x', 'y', [{ from: '*', to: '*', event: 'OrderSigned' }]), 'OrderSigned');
    assert.equal(eventForTransition(null, 'y', [{ from: 'x', to: '*', event: 'OrderSigned' }]), undefined);
  });

  it('leaves out event types not listed in webHook.events, and counts them', () => {
    const mapped = mapChange(update('created', 'signed', null, '2027-01-01'), { events: ['OrderDueDateUpdated'] });
    assert.deepEqual(mapped.events, ['OrderDueDateUpdated']);
    assert.equal(mapped.filtered, 1);
  });

  it('builds the exact body of the spec', () => {
    assert.equal(
      eventBody('07c6ad8c-d1ba-4e73-9bbf-c70a085a449c', 'OrderAccepted'),
      '{"orderId":"07c6ad8c-d1ba-4e73-9bbf-c70a085a449c","eventType":"OrderAccepted"}',
    );
    assert.equal(eventBody('a"b\\c', 'OrderCreated'), '{"orderId":"a\\"b\\\\c","eventType":"OrderCreated"}');
  });
});

describe('event ids', () => {
  const installation = '9b2f6c1e-0d7a-4c55-9a31-2f0e4b8d7c66';
  const source = { changeId: '42', changedAtUs: '1795867200123456', orderId: 'o-1' };

  it('are UUID version 7 with the change’s time in milliseconds first', () => {
    const id = eventId(installation, source, 0);
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(parseInt(id.replace(/-/g, '').slice(0, 12), 16), 1795867200123);
  });

  it('are the same each time a change is mapped, and differ for anything else', () => {
    const id = eventId(installation, source, 0);
    assert.equal(eventId(installation, { ...source }, 0), id, 'deterministic');
    const others = [
      eventId(installation, source, 1),
      eventId(installation, { ...source, changeId: '43' }, 0),
      eventId(installation, { ...source, changedAtUs: '1795867200123457' }, 0),
      eventId(installation, { ...source, orderId: 'o-2' }, 0),
      eventId('another installation', source, 0),
    ];
    assert.equal(new Set([id, ...others]).size, 6);
  });

  it('sort by the time of their changes', () => {
    const earlier = eventId(installation, source, 0);
    const later = eventId(installation, { ...source, changeId: '1', changedAtUs: '1795867200124000' }, 0);
    assert.ok(earlier < later);
  });
});
