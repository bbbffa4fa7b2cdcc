// The signature test vectors docs/security.md publishes for receivers, in one place for the tests
// of the receiver kit and the example receivers. `published()` says which are not in the document.
import { readFileSync } from 'node:fs';

export const VECTORS = {
  body: '{"orderId":"07c6ad8c-d1ba-4e73-9bbf-c70a085a449c","eventType":"OrderAccepted"}',
  xSignature: {
    secret: 'HeaderSecret',
    hex: 'c28cd704d8ce1167a0073cf86f2d34c526c8795b83b10af31a1610c980549e8c',
    base64: 'wozXBNjOEWegBzz4by00xSbIeVuDsQrzGhYQyYBUnow=',
  },
  standardWebhooks: {
    id: '0193a1f0-7c2e-7b5a-9d3e-2f4c6b8a1e07',
    timestamp: 1764680000,
    secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
    signature: 'v1,93faZ2yphDXjYv0ek5i7haumRBLYAEraiqP2McslZ8w=',
    /** The secret added in a rotation, and the header signed with both. */
    next: 'whsec_dGhlIG5ldyBrZXkgYWZ0ZXIgdGhlIHJvdGF0aW9u',
    both: 'v1,93faZ2yphDXjYv0ek5i7haumRBLYAEraiqP2McslZ8w= v1,GyuNIwR0LvSyqXiB+En8VXO94Ld7dtnH8vXCk/Ryla0=',
  },
  /** The Standard Webhooks reference libraries' own vector (same secret). */
  reference: {
    id: 'msg_p5jXN8AQM9LWM0D4loKWxJek',
    timestamp: 1614265330,
    body: '{"test": 2432232314}',
    signature: 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
  },
} as const;

/** Every vector value that docs/security.md does not show (none, when the two agree). */
export function unpublished(): string[] {
  const text = readFileSync(new URL('../../docs/security.md', import.meta.url), 'utf8');
  const values = [
    VECTORS.body,
    ...Object.values(VECTORS.xSignature),
    ...Object.values(VECTORS.standardWebhooks),
    ...Object.values(VECTORS.reference),
  ];
  return values.map(String).filter((value) => !text.includes(value));
}
