// Package tracing is the cloud's optional OpenTelemetry tracing: one span
// per HTTP request, exported over OTLP/HTTP (protobuf) to the collector the
// operator names.
//
// States: off (the default) or on. Off, nothing is built: serve installs
// no middleware and no exporter, so a request pays nothing for it. On
// (COMMONSID_OTLP_ENDPOINT, or the standard OTEL_EXPORTER_OTLP_ENDPOINT /
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), every request served on the public
// listener is a server span, named "METHOD route" after the route pattern
// that served it (never the path, which can carry handles, codes and
// tokens), with the attributes http.request.method, http.route,
// http.response.status_code and commonsid.request_id; a 5xx answer marks
// the span as an error. A W3C traceparent header sent by a reverse proxy
// makes the span its child (the trace id and sampling decision are taken
// from it; nothing else is).
//
// Rules: spans are batched and sent in the background, so a collector that
// is slow or down never holds a request; the exporter's queue is bounded
// (the SDK drops what does not fit); Shutdown sends what is left within
// the deadline it is given. The provider is the cloud's own, never the
// process-wide one, so that several clouds in one process keep their
// spans apart. The collector's address is the operator's configuration,
// not input from outside: it may be on a private network, and is reached
// with an ordinary client (time-limited), not the guarded outbound one.
package tracing
