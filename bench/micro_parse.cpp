// Google Benchmark: parse + respond through the worker's protocol core (RequestParser), with no
// sockets: the bytes one recv() would return go in, the bytes one send() would write come out.
// Built by bench/run.sh against the Release static libraries (not part of the main CMake build).
#include <benchmark/benchmark.h>

#include <ctime>
#include <string>
#include <string_view>

#include "worker/request_parser.hpp"
#include "worker/response.hpp"

namespace {

using prefork::worker::Limits;
using prefork::worker::RequestParser;
using prefork::worker::Responses;

// What wrk sends (wrk.format(nil, "/")), and a typical browser-ish request.
constexpr std::string_view kWrkRequest = "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";
constexpr std::string_view kCurlRequest =
    "GET /index.html HTTP/1.1\r\nHost: localhost:8888\r\nUser-Agent: curl/7.88.1\r\n"
    "Accept: */*\r\n\r\n";

std::string repeat(std::string_view s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out.append(s);
  return out;
}

// One parser for the whole run, as on a keep-alive connection; keepalive_requests = 0 (no cap)
// so the parser never switches to "Connection: close".
void run(benchmark::State& state, std::string_view request, int pipelined) {
  Limits limits;
  limits.keepalive_requests = 0;
  const Responses responses(std::time(nullptr));
  RequestParser parser(limits, responses);
  const std::string input = repeat(request, pipelined);
  std::string out;
  out.reserve(4096);
  for (auto _ : state) {
    out.clear();
    parser.feed(input, out);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  if (parser.last_status() != 200 || parser.closing()) state.SkipWithError("unexpected response");
  state.SetItemsProcessed(state.iterations() * pipelined);
  state.counters["ns_per_request"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * pipelined,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["out_bytes"] = static_cast<double>(out.size());
}

void BM_ParseRespond_1(benchmark::State& state) {
  run(state, kWrkRequest, 1);
}
void BM_ParseRespond_16_Pipelined(benchmark::State& state) {
  run(state, kWrkRequest, 16);
}
void BM_ParseRespond_Curl_1(benchmark::State& state) {
  run(state, kCurlRequest, 1);
}

// A fresh parser per request: the cost a connection-per-request client adds on top.
void BM_NewParser_ParseRespond_1(benchmark::State& state) {
  Limits limits;
  const Responses responses(std::time(nullptr));
  std::string out;
  out.reserve(4096);
  for (auto _ : state) {
    RequestParser parser(limits, responses);
    out.clear();
    parser.feed(kWrkRequest, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
}

// The once-a-second Date patch of every prebuilt response.
void BM_Responses_SetDate(benchmark::State& state) {
  Responses responses(std::time(nullptr));
  std::time_t t = 1'700'000'000;
  for (auto _ : state) benchmark::DoNotOptimize(responses.set_date(++t));
}

}  // namespace

BENCHMARK(BM_ParseRespond_1);
BENCHMARK(BM_ParseRespond_16_Pipelined);
BENCHMARK(BM_ParseRespond_Curl_1);
BENCHMARK(BM_NewParser_ParseRespond_1);
BENCHMARK(BM_Responses_SetDate);
BENCHMARK_MAIN();
