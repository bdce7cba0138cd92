// Sends a primary and a linked candidate span (with attributes and an event) through the
// OpenTelemetry JavaScript SDK's OTLP HTTP exporter (JSON encoding) to the URL in argv[2].
const { BasicTracerProvider, SimpleSpanProcessor } = require("@opentelemetry/sdk-trace-base");
const { OTLPTraceExporter } = require("@opentelemetry/exporter-trace-otlp-http");
const api = require("@opentelemetry/api");

let resourceOption = {};
try {
  const resources = require("@opentelemetry/resources");
  if (resources.resourceFromAttributes) {
    resourceOption = { resource: resources.resourceFromAttributes({ "service.name": "js-interop" }) };
  } else if (resources.Resource) {
    resourceOption = { resource: new resources.Resource({ "service.name": "js-interop" }) };
  }
} catch (e) {}

const exporter = new OTLPTraceExporter({ url: process.argv[2] });
const processor = new SimpleSpanProcessor(exporter);
const provider = new BasicTracerProvider({ ...resourceOption, spanProcessors: [processor] });
if (provider.addSpanProcessor) provider.addSpanProcessor(processor);
const tracer = provider.getTracer("interop");

const primary = tracer.startSpan("js-exp", {
  attributes: { "shadow.experiment": "js-exp", "shadow.role": "primary", "gen_ai.usage.input_tokens": 12, "ratio": 0.5, "ok": true },
});
primary.addEvent("first_chunk", { index: 1 });
primary.end();
const parentCtx = api.trace.setSpan(api.context.active(), primary);
const candidate = tracer.startSpan(
  "js-exp",
  {
    attributes: { "shadow.experiment": "js-exp", "shadow.role": "candidate" },
    links: [{ context: primary.spanContext(), attributes: { "shadow.link": "primary" } }],
  },
  parentCtx,
);
candidate.end();
console.log(JSON.stringify({ trace: primary.spanContext().traceId, primary: primary.spanContext().spanId, candidate: candidate.spanContext().spanId }));
provider.forceFlush().then(() => provider.shutdown()).then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
