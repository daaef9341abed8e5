// One source of truth for the configuration keys: every key the parser knows is documented in
// etc/prefork-httpd.conf (a "#key = value" line) and in the man page (a ".BR key" entry), each
// with its real default, read back through the real parser; and nothing else is documented.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "common/config.hpp"

namespace prefork::common {
namespace {

struct Documented {
  std::string value;  // as TOML
  std::string where;  // file:line
};

std::vector<std::string> lines_of_file(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in) << "cannot open " << path;
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// The documented entries of `path`: each line that matches `entry` ($1 key, $2 value), the
// value passed through `unescape`. A key documented twice is reported.
std::map<std::string, Documented> documented_in(const std::string& path, const std::regex& entry,
                                                std::string (*unescape)(std::string)) {
  std::map<std::string, Documented> out;
  const auto lines = lines_of_file(path);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    std::smatch match;
    if (!std::regex_match(lines[i], match, entry)) continue;
    const std::string where = path + ":" + std::to_string(i + 1);
    const auto [it, added] = out.emplace(match[1], Documented{unescape(match[2]), where});
    EXPECT_TRUE(added) << where << ": '" << match[1] << "' is documented again (first at "
                       << it->second.where << ")";
  }
  return out;
}

std::string as_is(std::string text) {
  return text;
}

// man(7) escapes in a value: \(dq is '"', \- is '-'.
std::string unescape_roff(std::string text) {
  for (const auto& [from, to] :
       {std::pair<std::string, std::string>{"\\(dq", "\""}, {"\\-", "-"}}) {
    for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
      text.replace(at, from.size(), to);
    }
  }
  return text;
}

// Every key is documented once, with a value the parser reads as the built-in default; every
// documented key exists.
void expect_documents_every_key(const std::map<std::string, Documented>& documented,
                                const std::string& file) {
  const Config defaults = parse_config("", "documented");
  const auto keys = config_keys();
  ASSERT_FALSE(keys.empty());
  for (const auto key : keys) {
    const auto it = documented.find(std::string(key));
    if (it == documented.end()) {
      ADD_FAILURE() << "key '" << key << "' is not documented in " << file;
      continue;
    }
    const std::string line = std::string(key) + " = " + it->second.value;
    try {
      EXPECT_TRUE(parse_config(line, "documented") == defaults)
          << it->second.where << ": '" << line << "' is not the built-in default";
    } catch (const ConfigError& err) {
      ADD_FAILURE() << it->second.where << ": '" << line << "' does not parse: " << err.what();
    }
  }
  for (const auto& [key, entry] : documented) {
    EXPECT_TRUE(std::find(keys.begin(), keys.end(), key) != keys.end())
        << entry.where << ": '" << key << "' is documented but is no configuration key";
  }
}

TEST(ConfigDocumentation, TheConfigFileShowsEveryKeyWithItsDefault) {
  const std::string file = std::string(PREFORK_SOURCE_DIR) + "/etc/prefork-httpd.conf";
  expect_documents_every_key(documented_in(file, std::regex("#([a-z_]+) = (.*)"), as_is), file);
}

TEST(ConfigDocumentation, TheManPageShowsEveryKeyWithItsDefault) {
  const std::string file = std::string(PREFORK_SOURCE_DIR) + "/packaging/prefork-httpd.8";
  expect_documents_every_key(
      documented_in(file, std::regex(R"re(\.BR ([a-z_]+) " = (.*)")re"), unescape_roff), file);
}

// The check itself: a wrong default or a missing key is seen.
TEST(ConfigDocumentation, TheCheckSeesAWrongDefault) {
  EXPECT_FALSE(parse_config("graceful_timeout = 31", "documented") ==
               parse_config("", "documented"));
  EXPECT_FALSE(parse_config("status_allow = [\"127.0.0.0/8\"]", "documented") ==
               parse_config("", "documented"));
  EXPECT_EQ(unescape_roff(R"(\(dq/server\-status\(dq)"), "\"/server-status\"");
}

}  // namespace
}  // namespace prefork::common
