// A Node.js caller of a synthqa server that wants TLS and a bearer token, built from protos/
// alone. It calls GetServerInfo once and prints one JSON line on stdout: {"ok": true,
// "model": ...} or {"ok": false, "code": "<gRPC status name>", "details": ...}, so a test can
// check both what is let in and what is refused. Exits non-zero only on a usage error.
//
// Usage: SYNTHQA_CA_FILE=ca.pem [SYNTHQA_TOKEN=...] node secure_client.mjs HOST:PORT
// Without SYNTHQA_CA_FILE it calls in plaintext.

import { readFileSync } from "node:fs";
import path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PROTOS_DIR = path.resolve(HERE, "..", "..", "protos");
const PROTO_FILE = path.join(PROTOS_DIR, "synthqa", "v1", "synthqa.proto");

function credentials() {
  const caFile = process.env.SYNTHQA_CA_FILE;
  if (!caFile) {
    return grpc.credentials.createInsecure();
  }
  const channel = grpc.credentials.createSsl(readFileSync(caFile));
  const token = process.env.SYNTHQA_TOKEN;
  if (!token) {
    return channel;
  }
  // Call credentials: grpc-js adds the header to every call made on this channel.
  const bearer = grpc.credentials.createFromMetadataGenerator((_, done) => {
    const metadata = new grpc.Metadata();
    metadata.set("authorization", `Bearer ${token}`);
    done(null, metadata);
  });
  return grpc.credentials.combineChannelCredentials(channel, bearer);
}

const target = process.argv[2];
if (!target) {
  console.error("usage: node secure_client.mjs HOST:PORT");
  process.exit(2);
}
const definition = protoLoader.loadSync(PROTO_FILE, { includeDirs: [PROTOS_DIR], keepCase: true });
const { SynthQAService } = grpc.loadPackageDefinition(definition).synthqa.v1;
const client = new SynthQAService(target, credentials());
client.GetServerInfo({}, { deadline: new Date(Date.now() + 30_000) }, (error, info) => {
  if (error) {
    const code = Object.keys(grpc.status).find((name) => grpc.status[name] === error.code);
    console.log(JSON.stringify({ ok: false, code, details: error.details }));
  } else {
    console.log(JSON.stringify({ ok: true, model: info.model }));
  }
  client.close();
});
