// etc/examples/kubernetes.yaml: the numbers that make a pod leave its Service before its
// listeners close agree with each other and with the server configuration it carries (the
// ConfigMap's TOML and the container's PREFORK_HTTPD_ variables, read by the real parser).
// The YAML is read line by line: only the few scalars this needs, found under their parent key.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "common/config.hpp"

namespace prefork::common {
namespace {

// The margins docs/deploy.md explains: the time an endpoint change takes to reach every node's
// kube-proxy and the ingress controllers, and the time from graceful_timeout's end to the
// master's exit (the last SIGKILL and reaping).
constexpr Millis kEndpointPropagation = 5'000;
constexpr Millis kExitMargin = 5'000;

struct Line {
  std::size_t indent = 0;
  std::string text;  // without the indentation
};

std::vector<Line> read_yaml(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in) << "cannot open " << path;
  std::vector<Line> out;
  for (std::string raw; std::getline(in, raw);) {
    const auto start = raw.find_first_not_of(' ');
    if (start == std::string::npos) {
      out.push_back({0, ""});
      continue;
    }
    out.push_back({start, raw.substr(start)});
  }
  return out;
}

// A YAML view: the lines of the block under one key (more indented than it).
struct Block {
  const std::vector<Line>* lines;
  std::size_t begin;
  std::size_t end;

  // The block under the first line in this one that is `key:` (or `- key:`).
  [[nodiscard]] Block child(const std::string& key) const {
    for (std::size_t i = begin; i < end; ++i) {
      const std::string& t = (*lines)[i].text;
      const std::string item = t.starts_with("- ") ? t.substr(2) : t;
      if (!item.starts_with(key + ":")) continue;
      const std::size_t indent = (*lines)[i].indent + (t.starts_with("- ") ? 2 : 0);
      std::size_t j = i + 1;
      while (j < end && ((*lines)[j].text.empty() || (*lines)[j].indent > indent)) ++j;
      // The block also holds the key's own line, so that a scalar on it can be read.
      return {lines, i, j};
    }
    ADD_FAILURE() << "no '" << key << ":' found";
    return {lines, begin, begin};
  }

  // The value of the first `key: value` line in the block, quotes removed.
  [[nodiscard]] std::optional<std::string> scalar(const std::string& key) const {
    for (std::size_t i = begin; i < end; ++i) {
      std::string t = (*lines)[i].text;
      if (t.starts_with("- ")) t = t.substr(2);
      if (!t.starts_with(key + ": ")) continue;
      std::string value = t.substr(key.size() + 2);
      if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
        value = value.substr(1, value.size() - 2);
      }
      return value;
    }
    return std::nullopt;
  }

  [[nodiscard]] long number(const std::string& key) const {
    const auto value = scalar(key);
    EXPECT_TRUE(value) << "no '" << key << ":' found";
    return value ? std::stol(*value) : -1;
  }

  // The text of a `key: |` block scalar, its indentation removed.
  [[nodiscard]] std::string literal(const std::string& key) const {
    const Block b = child(key);
    std::string out;
    std::size_t indent = 0;
    for (std::size_t i = b.begin + 1; i < b.end; ++i) {
      const Line& line = (*lines)[i];
      if (indent == 0) indent = line.indent;
      if (!line.text.empty()) out += std::string(line.indent - indent, ' ') + line.text;
      out += '\n';
    }
    return out;
  }
};

class KubernetesExample : public ::testing::Test {
 protected:
  KubernetesExample()
      : lines_(read_yaml(std::string(PREFORK_SOURCE_DIR) + "/etc/examples/kubernetes.yaml")),
        pod_(section("Deployment").child("template").child("spec")),
        container_(pod_.child("containers")) {}

  // The server's configuration as the pod runs it: the ConfigMap's file, then the container's
  // literal PREFORK_HTTPD_ variables (those from valueFrom need a cluster: left out).
  [[nodiscard]] Config config() const {
    Environment environment;
    const Block env = container_.child("env");
    for (std::size_t i = env.begin + 1; i + 1 < env.end; ++i) {
      // An item is "- name: X" and, on the next line, "value: ..." or "valueFrom:".
      const Block item{&lines_, i, i + 2};
      const auto name = lines_[i].text.starts_with("- name: ") ? item.scalar("name") : std::nullopt;
      const auto value = item.scalar("value");
      if (name && value) environment.push_back({*name, *value});
    }
    return parse_config(section("ConfigMap").literal("prefork-httpd.conf"),
                        "kubernetes.yaml ConfigMap", {}, environment);
  }

  // The document (between "---" lines) of this kind.
  [[nodiscard]] Block section(const std::string& kind) const {
    std::size_t begin = 0;
    for (std::size_t i = 0; i <= lines_.size(); ++i) {
      if (i < lines_.size() && lines_[i].text != "---") continue;
      const Block document{&lines_, begin, i};
      if (document.scalar("kind") == kind) return document;
      begin = i + 1;
    }
    ADD_FAILURE() << "no " << kind << " in the file";
    return {&lines_, 0, 0};
  }

  // A probe's or a Service's port: a number, or the name of the container's port.
  [[nodiscard]] long container_port(const std::string& port) const {
    const Block ports = container_.child("ports");
    if (ports.scalar("name") == port || ports.scalar("containerPort") == port) {
      return ports.number("containerPort");
    }
    ADD_FAILURE() << "port '" << port << "' is not the container's";
    return -1;
  }

  std::vector<Line> lines_;
  Block pod_;
  Block container_;
};

long listen_port(const Config& config) {
  EXPECT_EQ(config.listen.size(), 1U);
  const std::string& spec = config.listen.front();
  return std::stol(spec.substr(spec.rfind(':') + 1));
}

TEST_F(KubernetesExample, TheReadinessProbeAsksTheServersHealthEndpoint) {
  const Config c = config();
  const Block probe = container_.child("readinessProbe");
  ASSERT_FALSE(c.healthz_path.empty());
  EXPECT_EQ(probe.scalar("path"), c.healthz_path);
  EXPECT_EQ(container_port(*probe.scalar("port")), listen_port(c));
  EXPECT_EQ(container_port(*section("Service").scalar("targetPort")), listen_port(c));
  // A liveness probe on /healthz would fail during every drain.
  for (std::size_t i = container_.begin; i < container_.end; ++i) {
    EXPECT_FALSE(lines_[i].text.starts_with("livenessProbe:")) << "line " << i + 1;
  }
}

TEST_F(KubernetesExample, ThePodLeavesItsEndpointsBeforeTheListenersClose) {
  const Config c = config();
  const Block probe = container_.child("readinessProbe");
  // /healthz answers 503 from SIGTERM on; the probe sees it within failureThreshold periods
  // (each probe waiting at most timeoutSeconds), then the change must reach every node.
  const Millis noticed = (probe.number("periodSeconds") * probe.number("failureThreshold") +
                          probe.number("timeoutSeconds")) *
                         1000;
  EXPECT_EQ(probe.number("successThreshold"), 1);
  EXPECT_GT(c.drain_delay, 0);
  EXPECT_LE(noticed + kEndpointPropagation, c.drain_delay)
      << "readiness fails after " << noticed << " ms; drain_delay is " << c.drain_delay << " ms";
}

TEST_F(KubernetesExample, KubernetesWaitsForTheWholeDrainBeforeItKills) {
  const Config c = config();
  const Millis grace = pod_.number("terminationGracePeriodSeconds") * 1000;
  EXPECT_GE(grace, c.drain_delay + c.graceful_timeout + kExitMargin)
      << "drain_delay " << c.drain_delay << " ms + graceful_timeout " << c.graceful_timeout
      << " ms + " << kExitMargin << " ms";
}

TEST_F(KubernetesExample, TheContainerReadsTheMountedConfigMap) {
  const Block mount = container_.child("volumeMounts");
  const std::string path = *mount.scalar("mountPath") + "/prefork-httpd.conf";
  EXPECT_THAT(*container_.scalar("args"), ::testing::HasSubstr("\"" + path + "\""));
  EXPECT_EQ(pod_.child("volumes").scalar("name"), mount.scalar("name"));
  EXPECT_NO_THROW((void)config());
}

}  // namespace
}  // namespace prefork::common
