// Real prefork-httpd servers shared by the tests of one suite: one per process model, started
// when a test first asks for it, stopped with SIGTERM after the suite's last test, and then
// checked for a clean exit, unexpected error lines and unreaped children.
#pragma once

#include <signal.h>
#include <sys/wait.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "tests/support/server_process.hpp"

namespace prefork::testing {

// The two process models of the design (§3). The HTTP contract is the same in both, so the
// suites that check it run against each.
enum class Model { kPrefork, kPerConnection };

inline const auto kBothModels = ::testing::Values(Model::kPrefork, Model::kPerConnection);

inline std::string model_name(Model model) {
  return model == Model::kPrefork ? "Prefork" : "PerConnection";
}

inline void PrintTo(Model model, std::ostream* out) {
  *out << model_name(model);
}

// The command-line arguments that select `model`, put before a suite's own.
inline std::vector<std::string> model_args(Model model) {
  if (model == Model::kPrefork) return {};
  return {"--mode", "per-connection"};
}

inline ServerOptions in_model(Model model, ServerOptions options) {
  std::vector<std::string> args = model_args(model);
  args.insert(args.end(), options.args.begin(), options.args.end());
  options.args = std::move(args);
  return options;
}

// A test checks the model it names, not whatever its options left in force.
inline void expect_runs_in(const ServerProcess& server, Model model) {
  EXPECT_THAT(server.log(),
              ::testing::HasSubstr(model == Model::kPrefork ? "starting: mode prefork"
                                                            : "starting: mode per-connection"));
}

// Names a test parameterized by a model alone, or by a model and a case with a `name`.
inline std::string model_param_name(const ::testing::TestParamInfo<Model>& info) {
  return model_name(info.param);
}
template <typename Case>
std::string model_case_name(const ::testing::TestParamInfo<std::tuple<Model, Case>>& info) {
  return model_name(std::get<0>(info.param)) + "_" + std::get<1>(info.param).name;
}

// CRTP base of a fixture: `Derived` provides `static ServerOptions server_options()` (public),
// the options its suite's servers start with in either model.
template <typename Derived>
class SharedServerSuite : public ::testing::Test {
 protected:
  static void TearDownTestSuite() {
    for (auto& server : servers_) {
      if (!server) continue;
      server->signal(SIGTERM);
      const auto status = server->wait_exit(10s);
      EXPECT_TRUE(status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
      EXPECT_THAT(server->unexpected_errors(), ::testing::IsEmpty());
      server.reset();
    }
    EXPECT_EQ(reap_zombies(), 0);
  }

  // The suite's server in `model`, started on first use.
  static ServerProcess& server(Model model = Model::kPrefork) {
    auto& slot = servers_[static_cast<std::size_t>(model)];
    if (!slot) {
      slot = std::make_unique<ServerProcess>(in_model(model, Derived::server_options()));
      expect_runs_in(*slot, model);
    }
    return *slot;
  }

  static std::uint16_t port(Model model = Model::kPrefork) { return server(model).port(); }

 private:
  static inline std::array<std::unique_ptr<ServerProcess>, 2> servers_;
};

// A SharedServerSuite whose tests run once per model (`Param` is the Model, or a tuple of the
// Model and a case); `port()` and `server()` are the current model's.
template <typename Derived, typename Param = Model>
class ModelSuite : public SharedServerSuite<Derived>, public ::testing::WithParamInterface<Param> {
 protected:
  Model model() const {
    if constexpr (std::is_same_v<Param, Model>) {
      return this->GetParam();
    } else {
      return std::get<0>(this->GetParam());
    }
  }
  const auto& test_case() const { return std::get<1>(this->GetParam()); }
  std::uint16_t port() const { return SharedServerSuite<Derived>::port(model()); }
  ServerProcess& server() const { return SharedServerSuite<Derived>::server(model()); }
};

}  // namespace prefork::testing
