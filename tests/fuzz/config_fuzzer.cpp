// libFuzzer target for configuration loading and validation (common/config.hpp), the code a
// reload runs inside the master: any text must give a Config or a ConfigError. Anything else
// (a crash, a sanitizer report, another exception type) escapes to libFuzzer as a finding.
//   input  TOML text, optionally followed by NUL-separated "key=value" command-line overrides
//          (what `--set key=value` passes)
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.hpp"

namespace {

using prefork::common::ConfigError;
using prefork::common::Override;

std::vector<Override> overrides_from(std::string_view rest) {
  std::vector<Override> out;
  while (!rest.empty()) {
    const auto end = rest.find('\0');
    const std::string_view item = rest.substr(0, end);
    const auto equals = item.find('=');
    out.push_back({std::string(item.substr(0, equals)),
                   equals == std::string_view::npos ? "" : std::string(item.substr(equals + 1))});
    if (end == std::string_view::npos) break;
    rest.remove_prefix(end + 1);
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto split = input.find('\0');
  const std::string_view text = input.substr(0, split);
  const auto overrides = split == std::string_view::npos ? std::vector<Override>{}
                                                         : overrides_from(input.substr(split + 1));
  try {
    const auto config = prefork::common::parse_config(text, "fuzz.conf", overrides);
    // What the master reads from a loaded config must hold for any accepted text.
    if (config.listen.empty()) __builtin_trap();
    for (const auto& spec : config.proxy_protocol_listen) {
      if (!config.proxy_protocol_on(spec)) __builtin_trap();
    }
    (void)config.worker_count();
  } catch (const ConfigError&) {
    // The one expected way to refuse a configuration.
  }
  return 0;
}
