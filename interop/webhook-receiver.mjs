// A webhook receiver for verifyd's integration tests that verifies every
// delivery with the official Telnyx SDK (client.webhooks.unwrap), exactly as
// an application would. Env: RECEIVER_PUBLIC_KEY (base64 of the raw 32-byte
// Ed25519 key), RECEIVER_PORT (0 = any). Paths starting /fail answer 500
// after verifying; a delivery that fails verification gets 400. Each request
// is reported on stdout as one JSON line; the first line is {"listening": port}.
import http from 'node:http';
import Telnyx from 'telnyx';

const client = new Telnyx({ apiKey: 'unused-by-the-receiver', publicKey: process.env.RECEIVER_PUBLIC_KEY });
const server = http.createServer(async (req, res) => {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const body = Buffer.concat(chunks).toString('utf8');
  let verified = true;
  let error = null;
  let event = null;
  try {
    event = await client.webhooks.unwrap(body, { headers: req.headers });
  } catch (e) {
    verified = false;
    error = String(e && e.message ? e.message : e);
  }
  const fail = req.url.startsWith('/fail');
  process.stdout.write(JSON.stringify({ path: req.url, verified, error, event, received_at: Date.now() }) + '\n');
  res.statusCode = !verified ? 400 : fail ? 500 : 200;
  res.end(verified ? 'ok' : 'signature rejected');
});
server.listen(Number(process.env.RECEIVER_PORT || 0), '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ listening: server.address().port }) + '\n');
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
