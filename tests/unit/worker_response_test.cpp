// Prebuilt responses: exact bytes, the IMF-fixdate Date, and its once-a-second refresh.
#include <gtest/gtest.h>

#include <string>

#include "worker/response.hpp"

namespace prefork::worker {
namespace {

TEST(WorkerResponse, HttpDateIsImfFixdate) {
  EXPECT_EQ(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
  EXPECT_EQ(http_date(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");  // RFC 9110's example
  EXPECT_EQ(http_date(951782400), "Tue, 29 Feb 2000 00:00:00 GMT");
  EXPECT_EQ(http_date(1700000000), "Tue, 14 Nov 2023 22:13:20 GMT");
  EXPECT_EQ(http_date(4102444799), "Thu, 31 Dec 2099 23:59:59 GMT");
  EXPECT_EQ(http_date(4102444800), "Fri, 01 Jan 2100 00:00:00 GMT");
  EXPECT_EQ(http_date(1700000000).size(), kHttpDateLength);
}

TEST(WorkerResponse, HelloBytes) {
  const Responses responses(784111777);
  EXPECT_EQ(responses.hello(false, ConnectionHeader::kNone),
            "HTTP/1.1 200 OK\r\n"
            "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
            "Server: prefork-httpd\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Length: 13\r\n"
            "\r\n"
            "Hello, World!");
  EXPECT_EQ(responses.hello(true, ConnectionHeader::kKeepAlive),
            "HTTP/1.1 200 OK\r\n"
            "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
            "Server: prefork-httpd\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Length: 13\r\n"
            "Connection: keep-alive\r\n"
            "\r\n");
}

TEST(WorkerResponse, OptionsIs204WithoutContentLength) {
  const Responses responses(784111777);
  EXPECT_EQ(responses.options(ConnectionHeader::kClose),
            "HTTP/1.1 204 No Content\r\n"
            "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
            "Server: prefork-httpd\r\n"
            "Allow: GET, HEAD, OPTIONS\r\n"
            "Connection: close\r\n"
            "\r\n");
}

TEST(WorkerResponse, MethodNotAllowedKeepsTheConnection) {
  const Responses responses(784111777);
  EXPECT_EQ(responses.method_not_allowed(ConnectionHeader::kNone),
            "HTTP/1.1 405 Method Not Allowed\r\n"
            "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
            "Server: prefork-httpd\r\n"
            "Allow: GET, HEAD\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Length: 19\r\n"
            "\r\n"
            "Method Not Allowed\n");
}

TEST(WorkerResponse, ErrorsCloseAndCarryAShortBody) {
  const Responses responses(784111777);
  EXPECT_EQ(responses.error(ErrorStatus::k431, false),
            "HTTP/1.1 431 Request Header Fields Too Large\r\n"
            "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
            "Server: prefork-httpd\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Length: 32\r\n"
            "Connection: close\r\n"
            "\r\n"
            "Request Header Fields Too Large\n");
  EXPECT_EQ(responses.error(ErrorStatus::k400, true),
            "HTTP/1.1 400 Bad Request\r\n"
            "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
            "Server: prefork-httpd\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Length: 12\r\n"
            "Connection: close\r\n"
            "\r\n");
  for (auto status : {ErrorStatus::k400, ErrorStatus::k405, ErrorStatus::k408, ErrorStatus::k413,
                      ErrorStatus::k414, ErrorStatus::k417, ErrorStatus::k431, ErrorStatus::k505}) {
    const std::string bytes(responses.error(status, false));
    SCOPED_TRACE(bytes);
    EXPECT_EQ(bytes.substr(0, 13), "HTTP/1.1 " + std::to_string(status_code(status)) + " ");
    // Content-Length matches the body that follows the head.
    const auto head_end = bytes.find("\r\n\r\n") + 4;
    const auto at = bytes.find("Content-Length: ") + 16;
    EXPECT_EQ(std::stoul(bytes.substr(at)), bytes.size() - head_end);
    EXPECT_NE(bytes.find("\r\nConnection: close\r\n"), std::string::npos);
  }
}

TEST(WorkerResponse, DateRefreshesOncePerSecondInPlace) {
  Responses responses(784111777);
  const std::string_view view = responses.hello(false, ConnectionHeader::kNone);
  const char* const data = view.data();
  EXPECT_FALSE(responses.set_date(784111777));
  EXPECT_TRUE(responses.set_date(784111778));
  EXPECT_FALSE(responses.set_date(784111778));
  const std::string_view after = responses.hello(false, ConnectionHeader::kNone);
  EXPECT_EQ(after.data(), data);  // patched where it is, no reallocation
  EXPECT_EQ(after.size(), view.size());
  EXPECT_NE(after.find("Date: Sun, 06 Nov 1994 08:49:38 GMT\r\n"), std::string_view::npos);
  EXPECT_NE(responses.error(ErrorStatus::k505, true).find("08:49:38 GMT"), std::string_view::npos);
  EXPECT_NE(responses.options(ConnectionHeader::kKeepAlive).find("08:49:38 GMT"),
            std::string_view::npos);
}

TEST(WorkerResponse, ContinueIsBare) {
  EXPECT_EQ(Responses::kContinue, "HTTP/1.1 100 Continue\r\n\r\n");
}

}  // namespace
}  // namespace prefork::worker
