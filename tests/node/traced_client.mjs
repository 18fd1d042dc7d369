// A synthqa Node.js client that runs one Generate call under OpenTelemetry tracing, so a test
// can check that the Node client's spans and the server's spans share one trace (the call
// carries a W3C `traceparent` in its metadata).
//
// Usage: OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 node traced_client.mjs HOST:PORT
//
// Spans go by OTLP/gRPC to OTEL_EXPORTER_OTLP_ENDPOINT (the exporter's default when unset);
// OTEL_SERVICE_NAME defaults to "synthqa-node-test". Prints one JSON line on stdout:
// {"trace_id": "<32 hex>", "events": N, "kinds": [...distinct event kinds...]}.
// Any error exits non-zero with a message on stderr.
//
// SYNTHQA_NODE_DEADLINE_S sets the deadline of the call in seconds (default 180).

import path from "node:path";
import process from "node:process";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

// Nothing imported statically here may load @grpc/grpc-js: the OTLP exporter loads it lazily.
import { SpanStatusCode, trace } from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-grpc";
import { registerInstrumentations } from "@opentelemetry/instrumentation";
import { GrpcInstrumentation } from "@opentelemetry/instrumentation-grpc";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, NodeTracerProvider } from "@opentelemetry/sdk-trace-node";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PROTOS_DIR = path.resolve(HERE, "..", "..", "protos");
const PROTO_FILE = path.join(PROTOS_DIR, "synthqa", "v1", "synthqa.proto");
const DEADLINE_S = Number(process.env.SYNTHQA_NODE_DEADLINE_S ?? "180");

const DOCUMENT_ID = "node-traced";
const DOC_TEXT =
  "Lighthouses mark dangerous coasts and harbour entrances. Each one flashes its own pattern " +
  "of light, so sailors at night can tell which lighthouse they see and where they are.";

const provider = new NodeTracerProvider({
  resource: resourceFromAttributes({
    "service.name": process.env.OTEL_SERVICE_NAME || "synthqa-node-test",
  }),
  spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())],
});
// Installs the global tracer provider, the async-hooks context manager and the W3C
// traceparent propagator that the grpc instrumentation injects into call metadata.
provider.register();
registerInstrumentations({ instrumentations: [new GrpcInstrumentation()] });

// The instrumentation patches @grpc/grpc-js through require-in-the-middle, which sees only
// CommonJS require() calls made after it is registered. A static `import` is hoisted above
// the registration, and even a dynamic import() goes through the ESM loader, which this hook
// never sees (that needs the import-in-the-middle loader). So load grpc-js with require() now.
const require = createRequire(import.meta.url);
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

function loadService() {
  const definition = protoLoader.loadSync(PROTO_FILE, {
    includeDirs: [PROTOS_DIR],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  return grpc.loadPackageDefinition(definition).synthqa.v1.SynthQAService;
}

function describe(error) {
  if (error && typeof error.code === "number") {
    const name = Object.keys(grpc.status).find((key) => grpc.status[key] === error.code);
    return `${name ?? error.code}: ${error.details ?? error.message}`;
  }
  return String(error && error.stack ? error.stack : error);
}

// One bidi Generate call, sent as client.mjs does: options first, then one document.
function generate(client) {
  return new Promise((resolve, reject) => {
    const events = [];
    const call = client.Generate({ deadline: new Date(Date.now() + DEADLINE_S * 1000) });
    call.on("data", (event) => events.push(event));
    call.on("error", (error) => reject(new Error(`Generate failed: ${describe(error)}`)));
    call.on("end", () => resolve(events));
    call.write({ options: { num_pairs: 1, max_generation_tokens: 128 } });
    call.write({ document: { document_id: DOCUMENT_ID, text: DOC_TEXT } });
    call.end();
  });
}

async function main() {
  const target = process.argv[2];
  if (!target) {
    throw new Error("usage: node traced_client.mjs HOST:PORT");
  }
  if (!grpc.Client.prototype.makeBidiStreamRequest.__wrapped) {
    throw new Error("@grpc/grpc-js was not patched by the OpenTelemetry grpc instrumentation");
  }
  const SynthQAService = loadService();
  const client = new SynthQAService(target, grpc.credentials.createInsecure());
  const tracer = trace.getTracer("synthqa-node-test");
  try {
    // startActiveSpan makes "node-caller" the parent of the instrumentation's CLIENT span.
    const { traceId, events } = await tracer.startActiveSpan("node-caller", async (span) => {
      try {
        return { traceId: span.spanContext().traceId, events: await generate(client) };
      } catch (error) {
        span.recordException(error);
        span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
        throw error;
      } finally {
        span.end();
      }
    });
    const kinds = [...new Set(events.map((event) => event.event))];
    return { trace_id: traceId, events: events.length, kinds };
  } finally {
    client.close();
  }
}

async function flush() {
  // forceFlush rejects if the collector is unreachable; a test that reads spans must know.
  await provider.forceFlush();
  await provider.shutdown();
}

main().then(
  async (summary) => {
    try {
      await flush();
    } catch (error) {
      process.stderr.write(`synthqa traced node client: span export failed: ${describe(error)}\n`);
      process.exitCode = 1;
      return;
    }
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  },
  async (error) => {
    process.stderr.write(`synthqa traced node client: ${error.message ?? error}\n`);
    process.exitCode = 1;
    await flush().catch(() => {});
  },
);
