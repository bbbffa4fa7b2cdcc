// A receiver for order-webhooks: JDK 17 or later, nothing else; run it with `java Receiver.java`.
//
// Verifies the signatures on the raw body in constant time, drops a repeated event by its
// X-Event-Id, then processes the event (here: nothing). One JSON line per request on stdout.
//
// Settings, from the environment (at least one of the secrets):
//   WEBHOOK_SECRET             webHook.secret: X-Signature must match it
//   WEBHOOK_OLD_SECRET         while webHook.secret changes: X-Signature may match this one instead
//   WEBHOOK_SIGNATURE_ENCODING webHook.signatureEncoding: hex (the default) or base64
//   WEBHOOK_STANDARD_SECRETS   whsec_ secrets, separated by spaces: Standard Webhooks must match one
//   WEBHOOK_TOLERANCE_SECONDS  how far webhook-timestamp may be from this clock (default 300)
//   HOST, PORT                 where to listen (default 127.0.0.1 and 8080; PORT=0: any free port)
//
// Answers 204 to a webhook that verifies (a duplicate too: it was processed), 401 to one that does
// not, 500 when processing failed (the service retries it later). The body is handed on unparsed:
// read {"orderId": "...", "eventType": "..."} from it with your JSON library.

import com.sun.net.httpserver.Headers;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

public class Receiver {
  static final int MAX_BODY = 1024 * 1024;

  /** Every verification failure, with a code: HEADER_MISSING, SIGNATURE_MISMATCH, TIMESTAMP_INVALID,
   * TIMESTAMP_TOO_OLD, TIMESTAMP_TOO_NEW, EVENT_ID_MISMATCH. */
  static final class VerificationException extends Exception {
    final String code;

    VerificationException(String code, String message) {
      super(message);
      this.code = code;
    }
  }

  record Settings(List<String> secrets, String encoding, List<String> standardSecrets, long toleranceSeconds) {}

  record Event(String eventId, Integer attempt, byte[] body) {}

  static byte[] hmacSha256(byte[] key, byte[] data) {
    try {
      Mac mac = Mac.getInstance("HmacSHA256");
      mac.init(new SecretKeySpec(key, "HmacSHA256"));
      return mac.doFinal(data);
    } catch (GeneralSecurityException e) {
      throw new IllegalStateException("HmacSHA256 is part of every JDK", e);
    }
  }

  static String required(Headers headers, String name) throws VerificationException {
    String value = headers.getFirst(name);
    if (value == null || value.isBlank()) throw new VerificationException("HEADER_MISSING", "the " + name + " header is missing");
    return value.strip();
  }

  /** X-Signature: HMAC-SHA256 of the body keyed by the secret's UTF-8 bytes, hex or base64. */
  static void verifyXSignature(List<String> secrets, byte[] body, Headers headers, String encoding) throws VerificationException {
    String header = required(headers, "X-Signature");
    // Hex is case-insensitive; base64 is not.
    byte[] given = (encoding.equals("hex") ? header.toLowerCase() : header).getBytes(StandardCharsets.UTF_8);
    boolean matched = false;
    for (String secret : secrets) { // every one is tried, so the time does not tell which matched
      byte[] digest = hmacSha256(secret.getBytes(StandardCharsets.UTF_8), body);
      String expected = encoding.equals("hex") ? HexFormat.of().formatHex(digest) : Base64.getEncoder().encodeToString(digest);
      matched |= MessageDigest.isEqual(given, expected.getBytes(StandardCharsets.US_ASCII));
    }
    if (!matched) throw new VerificationException("SIGNATURE_MISMATCH", "X-Signature does not match the body");
  }

  /** webhook-signature: a "v1,<base64>" HMAC-SHA256 of "{id}.{timestamp}.{body}" keyed by the
   * base64-decoded part of a whsec_ secret; the timestamp within the tolerance. Returns the id. */
  static String verifyStandardWebhook(List<String> secrets, byte[] body, Headers headers, long tolerance, long now)
      throws VerificationException {
    String id = required(headers, "webhook-id");
    String timestamp = required(headers, "webhook-timestamp");
    String signatures = required(headers, "webhook-signature");
    if (!timestamp.matches("[0-9]{1,15}")) throw new VerificationException("TIMESTAMP_INVALID", "webhook-timestamp is not a whole number of seconds");
    long seconds = Long.parseLong(timestamp);
    if (now - seconds > tolerance) throw new VerificationException("TIMESTAMP_TOO_OLD", "webhook-timestamp is more than " + tolerance + " s old");
    if (seconds - now > tolerance) throw new VerificationException("TIMESTAMP_TOO_NEW", "webhook-timestamp is more than " + tolerance + " s ahead");
    byte[] prefix = (id + "." + timestamp + ".").getBytes(StandardCharsets.UTF_8);
    byte[] signed = new byte[prefix.length + body.length];
    System.arraycopy(prefix, 0, signed, 0, prefix.length);
    System.arraycopy(body, 0, signed, prefix.length, body.length);
    boolean matched = false;
    for (String secret : secrets) {
      byte[] key = Base64.getDecoder().decode(secret.substring("whsec_".length()));
      byte[] expected = ("v1," + Base64.getEncoder().encodeToString(hmacSha256(key, signed))).getBytes(StandardCharsets.US_ASCII);
      for (String entry : signatures.split(" ")) matched |= MessageDigest.isEqual(entry.getBytes(StandardCharsets.UTF_8), expected);
    }
    if (!matched) throw new VerificationException("SIGNATURE_MISMATCH", "no webhook-signature matches the body");
    return id;
  }

  /** Checks what the settings ask for; returns the event id, the attempt and the raw body. */
  static Event verifyWebhook(byte[] body, Headers headers, Settings settings, long now) throws VerificationException {
    if (!settings.secrets().isEmpty()) verifyXSignature(settings.secrets(), body, headers, settings.encoding());
    String signedId = null;
    if (!settings.standardSecrets().isEmpty()) {
      signedId = verifyStandardWebhook(settings.standardSecrets(), body, headers, settings.toleranceSeconds(), now);
    }
    // X-Signature does not cover the headers; webhook-id is signed, so it must agree.
    String eventId = headers.getFirst("X-Event-Id");
    eventId = eventId == null || eventId.isBlank() ? signedId : eventId.strip();
    if (eventId == null) throw new VerificationException("HEADER_MISSING", "the X-Event-Id header is missing");
    if (signedId != null && !eventId.equals(signedId)) throw new VerificationException("EVENT_ID_MISMATCH", "X-Event-Id differs from the signed webhook-id");
    String attempt = headers.getFirst("X-Event-Attempt");
    Integer number = attempt != null && attempt.strip().matches("[0-9]{1,9}") ? Integer.valueOf(attempt.strip()) : null;
    return new Event(eventId, number, body);
  }

  /** The event ids processed, so that a retry or a replay is not processed twice. In memory, for one
   * process, forgotten on restart: in production keep them in your database, inserted in the same
   * transaction as the work (INSERT ... ON CONFLICT DO NOTHING). */
  static final class ProcessedEvents {
    private final Map<String, Boolean> done = new ConcurrentHashMap<>();

    /** "claimed" (process it), "duplicate" (processed) or "busy" (being processed). */
    String claim(String eventId) {
      Boolean previous = done.putIfAbsent(eventId, Boolean.FALSE);
      return previous == null ? "claimed" : previous ? "duplicate" : "busy";
    }

    void complete(String eventId) {
      done.put(eventId, Boolean.TRUE);
    }

    void release(String eventId) {
      done.remove(eventId, Boolean.FALSE);
    }
  }

  /** Your work goes here; an exception answers 500 and the service sends the event again. */
  static void process(Event event) {}

  static String json(String text) {
    if (text == null) return "null";
    StringBuilder out = new StringBuilder("\"");
    for (char c : text.toCharArray()) {
      if (c == '"' || c == '\\') out.append('\\').append(c);
      else if (c < 0x20) out.append(String.format("\\u%04x", (int) c));
      else out.append(c);
    }
    return out.append('"').toString();
  }

  static synchronized void report(String line) {
    System.out.println(line);
    System.out.flush();
  }

  static void handle(HttpExchange exchange, Settings settings, ProcessedEvents processed) throws IOException {
    try {
      if (!exchange.getRequestMethod().equals("POST")) {
        exchange.sendResponseHeaders(405, -1);
        return;
      }
      byte[] body;
      try (InputStream in = exchange.getRequestBody()) {
        body = in.readNBytes(MAX_BODY + 1); // the raw bytes: verified before anything parses them
      }
      if (body.length > MAX_BODY) {
        exchange.sendResponseHeaders(413, -1);
        return;
      }
      Event event;
      try {
        event = verifyWebhook(body, exchange.getRequestHeaders(), settings, Instant.now().getEpochSecond());
      } catch (VerificationException e) {
        report("{\"verified\":false,\"code\":" + json(e.code) + ",\"eventId\":" + json(exchange.getRequestHeaders().getFirst("X-Event-Id")) + "}");
        exchange.sendResponseHeaders(401, -1);
        return;
      }
      String claim = processed.claim(event.eventId());
      if (claim.equals("claimed")) {
        try {
          process(event);
        } catch (RuntimeException e) {
          processed.release(event.eventId());
          report("{\"verified\":true,\"processed\":false,\"eventId\":" + json(event.eventId()) + "}");
          exchange.sendResponseHeaders(500, -1);
          return;
        }
        processed.complete(event.eventId());
      }
      report("{\"verified\":true,\"duplicate\":" + !claim.equals("claimed") + ",\"eventId\":" + json(event.eventId()) + ",\"attempt\":"
          + event.attempt() + ",\"body\":" + json(new String(body, StandardCharsets.UTF_8)) + "}");
      exchange.sendResponseHeaders(claim.equals("busy") ? 409 : 204, -1);
    } finally {
      exchange.close();
    }
  }

  static Settings settingsFrom(Map<String, String> env) {
    List<String> secrets = new ArrayList<>();
    for (String name : List.of("WEBHOOK_SECRET", "WEBHOOK_OLD_SECRET")) {
      String value = env.get(name);
      if (value != null && !value.isEmpty()) secrets.add(value);
    }
    List<String> standard = new ArrayList<>();
    for (String secret : env.getOrDefault("WEBHOOK_STANDARD_SECRETS", "").split(" ")) {
      if (!secret.isBlank()) standard.add(secret.strip());
    }
    String encoding = env.getOrDefault("WEBHOOK_SIGNATURE_ENCODING", "hex");
    if (secrets.isEmpty() && standard.isEmpty()) throw new IllegalArgumentException("set WEBHOOK_SECRET, WEBHOOK_STANDARD_SECRETS or both");
    if (!encoding.equals("hex") && !encoding.equals("base64")) throw new IllegalArgumentException("WEBHOOK_SIGNATURE_ENCODING must be hex or base64");
    return new Settings(secrets, encoding, standard, Long.parseLong(env.getOrDefault("WEBHOOK_TOLERANCE_SECONDS", "300")));
  }

  public static void main(String[] args) throws IOException {
    Settings settings;
    try {
      settings = settingsFrom(System.getenv());
    } catch (IllegalArgumentException e) {
      System.err.println("receiver: " + e.getMessage());
      System.exit(2);
      return;
    }
    String host = System.getenv().getOrDefault("HOST", "127.0.0.1");
    HttpServer server = HttpServer.create(new InetSocketAddress(host, Integer.parseInt(System.getenv().getOrDefault("PORT", "8080"))), 64);
    ProcessedEvents processed = new ProcessedEvents();
    server.createContext("/", exchange -> handle(exchange, settings, processed));
    server.setExecutor(Executors.newFixedThreadPool(8));
    server.start();
    report("{\"listening\":" + json("http://" + host + ":" + server.getAddress().getPort()) + "}");
  }
}
