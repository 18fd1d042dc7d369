// A synthqa client in Node.js, built from protos/ and nothing else: no generated code, no
// Python. It checks that the wire contract is usable from a second language.
//
// Usage: node client.mjs HOST:PORT
//
// It calls GetServerInfo, ChunkDocument and a bidirectional Generate with two documents (the
// second sent in two parts), then prints one JSON summary on stdout. Any error exits non-zero
// with a message on stderr.
//
// SYNTHQA_NODE_DEADLINE_S sets the deadline of each call in seconds (default 180).

import path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PROTOS_DIR = path.resolve(HERE, "..", "..", "protos");
const PROTO_FILE = path.join(PROTOS_DIR, "synthqa", "v1", "synthqa.proto");

const NUM_PAIRS = 2;
const MAX_CHUNK_TOKENS = 128;
const DEADLINE_S = Number(process.env.SYNTHQA_NODE_DEADLINE_S ?? "180");

const CHUNK_TEXT =
  "Tide pools form where the sea retreats twice a day and leaves water behind in hollows " +
  "of rock. Anemones, crabs and snails live there and survive both waves and sun.";

const DOC_A =
  "The printing press spread across Europe within fifty years of its invention. Cheap books " +
  "changed how people learned to read, and pamphlets carried arguments from one city to the " +
  "next faster than any messenger could.";

// node-b is sent in two parts; the split is mid-sentence on purpose, so the server has to
// join the parts before it chunks.
const DOC_B_PARTS = [
  "Glaciers move slowly, a few metres to a few hundred metres a year, grinding the rock " +
    "beneath them into fine flour that turns meltwater rivers milky. Ice that reaches the sea " +
    "breaks off in slabs, and the icebergs drift for months before they melt. Layers of snow " +
    "pressed into the ice keep bubbles of old air, which let scientists read the climate of " +
    "the distant past. When a glacier ",
  "retreats it leaves moraines of gravel and boulders, and the valleys it carved keep their " +
    "U shape long after the ice is gone. Lakes fill the hollows it scooped out, and erratic " +
    "boulders sit far from the cliffs they came from. Farmers in many northern countries still " +
    "plough fields full of stones that the ice dropped thousands of years ago.",
];

function deadline() {
  return new Date(Date.now() + DEADLINE_S * 1000);
}

function loadService() {
  const definition = protoLoader.loadSync(PROTO_FILE, {
    includeDirs: [PROTOS_DIR],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const descriptor = grpc.loadPackageDefinition(definition);
  return descriptor.synthqa.v1.SynthQAService;
}

function unary(client, method, request) {
  return new Promise((resolve, reject) => {
    client[method](request, { deadline: deadline() }, (error, response) => {
      if (error) {
        reject(new Error(`${method} failed: ${describe(error)}`));
      } else {
        resolve(response);
      }
    });
  });
}

function describe(error) {
  if (error && typeof error.code === "number") {
    const name = Object.keys(grpc.status).find((key) => grpc.status[key] === error.code);
    return `${name ?? error.code}: ${error.details ?? error.message}`;
  }
  return String(error && error.stack ? error.stack : error);
}

// Runs one Generate call and resolves with every event, in arrival order.
function generate(client) {
  return new Promise((resolve, reject) => {
    const events = [];
    const call = client.Generate({ deadline: deadline() });
    call.on("data", (event) => events.push(event));
    call.on("error", (error) => reject(new Error(`Generate failed: ${describe(error)}`)));
    call.on("end", () => resolve(events));

    const options = { num_pairs: NUM_PAIRS, max_chunk_tokens: MAX_CHUNK_TOKENS };
    call.write({ options });
    call.write({ document: { document_id: "node-a", text: DOC_A } });
    DOC_B_PARTS.forEach((text, i) => {
      const more_follows = i < DOC_B_PARTS.length - 1;
      call.write({ document: { document_id: "node-b", text, more_follows } });
    });
    call.end();
  });
}

function emptyDocumentSummary() {
  return {
    chunk_count: null,
    chunk_started: 0,
    qa_pair: 0,
    chunk_completed: 0,
    chunk_failed: 0,
    document_completed: false,
    completed_pair_count: null,
    completed_chunk_count: null,
    failed_chunk_count: null,
    chunk_failed_errors: [],
  };
}

function summarise(events) {
  const documents = {};
  const eventKinds = [];
  const eventCounts = {};
  for (const event of events) {
    // With oneofs: true the loader names the set member of the oneof in `event.event`.
    const kind = event.event;
    if (!kind) {
      throw new Error(`event without a kind: ${JSON.stringify(event)}`);
    }
    if (!eventKinds.includes(kind)) {
      eventKinds.push(kind);
    }
    eventCounts[kind] = (eventCounts[kind] ?? 0) + 1;
    const body = event[kind];
    const id = body.document_id;
    documents[id] ??= emptyDocumentSummary();
    const doc = documents[id];
    switch (kind) {
      case "chunk_started":
        doc.chunk_started += 1;
        doc.chunk_count = body.chunk_count;
        break;
      case "qa_pair":
        doc.qa_pair += 1;
        break;
      case "chunk_completed":
        doc.chunk_completed += 1;
        break;
      case "chunk_failed":
        doc.chunk_failed += 1;
        doc.chunk_failed_errors.push(body.error ? body.error.message : "");
        break;
      case "document_completed":
        doc.document_completed = true;
        doc.chunk_count ??= body.chunk_count;
        doc.completed_pair_count = body.pair_count;
        doc.completed_chunk_count = body.completed_chunk_count;
        doc.failed_chunk_count = body.failed_chunk_count;
        break;
      default:
        throw new Error(`unknown event kind ${kind}`);
    }
  }
  return { documents, eventKinds, eventCounts };
}

async function main() {
  const target = process.argv[2];
  if (!target) {
    throw new Error("usage: node client.mjs HOST:PORT");
  }
  const SynthQAService = loadService();
  const client = new SynthQAService(target, grpc.credentials.createInsecure());
  try {
    const info = await unary(client, "GetServerInfo", {});
    const chunked = await unary(client, "ChunkDocument", {
      text: CHUNK_TEXT,
      options: { max_chunk_tokens: MAX_CHUNK_TOKENS },
    });
    const events = await generate(client);
    const { documents, eventKinds, eventCounts } = summarise(events);
    const summary = {
      target,
      model: info.model,
      max_model_len: info.max_model_len,
      version: info.version,
      chunk_document: {
        chunk_count: chunked.chunks.length,
        token_count: chunked.token_count,
        chunk_token_budget: chunked.chunk_token_budget,
      },
      num_pairs: NUM_PAIRS,
      max_chunk_tokens: MAX_CHUNK_TOKENS,
      documents,
      event_kinds: eventKinds,
      event_counts: eventCounts,
      event_total: events.length,
    };
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  } finally {
    client.close();
  }
}

main().then(
  () => {
    process.exitCode = 0;
  },
  (error) => {
    process.stderr.write(`synthqa node client: ${error.message ?? error}\n`);
    process.exitCode = 1;
  },
);
