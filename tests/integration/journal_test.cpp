// Logging to the journal: when stderr is the stream systemd connected (JOURNAL_STREAM names its
// device and inode), every line carries its sd-daemon priority ("<3>" for errors) so that
// `journalctl -p err` finds errors, and no timestamp of our own. Elsewhere lines are unchanged.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include "tests/support/server_process.hpp"

namespace prefork::testing {
namespace {

using ::testing::ContainsRegex;
using ::testing::Each;
using ::testing::StartsWith;

// Runs the binary with JOURNAL_STREAM set to its stderr (the log file), as systemd would.
const std::vector<std::string> kAsUnderSystemd = {
    "/bin/sh", "-c",
    "JOURNAL_STREAM=$(stat -L -c %d:%i /proc/$$/fd/2); export JOURNAL_STREAM; exec \"$0\" \"$@\""};

TEST(Journal, LinesCarryTheirPriorityAndAFailedReloadIsAnError) {
  ServerProcess server({.config = "workers = 1\n", .wrapper = kAsUnderSystemd});
  server.dir().write("server.conf", "workers = \"many\"\n");
  const auto mark = server.log_mark();
  server.signal(SIGHUP);
  ASSERT_TRUE(server.wait_for_log("reload failed", mark));
  const auto lines = lines_of(server.log());
  EXPECT_THAT(lines, Each(ContainsRegex("^<[2-7]>\\[")));
  EXPECT_THAT(lines.front(), StartsWith("<6>[info] master (pid "));
  EXPECT_THAT(server.log_since(mark), ContainsRegex("\n?<3>\\[error\\] master \\(pid [0-9]+\\): "
                                                    "reload failed"));
}

TEST(Journal, AStderrThatIsNotTheJournalKeepsTimestampsAndNoPrefix) {
  // JOURNAL_STREAM inherited from a service, but stderr was redirected since: not the journal.
  ServerProcess server({.config = "workers = 1\n", .env = {"JOURNAL_STREAM=1:1"}});
  EXPECT_THAT(lines_of(server.log()), Each(ContainsRegex("^[0-9]{4}-[0-9]{2}-[0-9]{2}T")));
}

}  // namespace
}  // namespace prefork::testing
