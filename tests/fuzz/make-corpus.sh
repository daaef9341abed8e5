#!/bin/sh
# Regenerates the seed corpus: one file per request stream, each prefixed with the fuzzer's two
# control bytes (plan, split seed; see request_fuzzer.cpp). Valid requests and smuggling vectors.
set -eu
cd "$(dirname "$0")"
rm -rf corpus && mkdir corpus
# seed NAME PLAN-BYTE SEED-BYTE STREAM (printf format: \r\n escapes, \000 for NUL)
seed() { printf "$2$3$4" > "corpus/$1"; }
H='Host: example.com\r\n'
GET="GET / HTTP/1.1\r\n${H}\r\n"
# plan \000 whole, \001 byte by byte, \002 small pieces, \003 large pieces; +\020 small limits;
# +\100 test switches on (?status, ?delay, ?echo)
seed valid-get                 '\000' '\000' "$GET"
seed valid-head                '\001' '\000' "HEAD /x HTTP/1.1\r\n${H}\r\n"
seed valid-http10              '\002' '\007' "GET / HTTP/1.0\r\n\r\n"
seed valid-http10-keepalive    '\002' '\011' "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n$GET"
seed valid-pipelined           '\003' '\001' "$GET""HEAD / HTTP/1.1\r\nHost: b\r\n\r\n$GET"
seed valid-post-then-get       '\022' '\003' "POST /f HTTP/1.1\r\n${H}Content-Length: 5\r\n\r\nhello$GET"
seed valid-chunked-trailer     '\002' '\005' "POST /f HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n3\r\nabc\r\n0\r\nTrailer: x\r\n\r\n$GET"
seed valid-options             '\000' '\000' "OPTIONS * HTTP/1.1\r\n${H}\r\n"
seed valid-expect-continue     '\022' '\002' "PUT /x HTTP/1.1\r\n${H}Expect: 100-continue\r\nContent-Length: 3\r\n\r\nabc"
seed valid-absolute-form       '\001' '\000' "GET http://example.com/x?y HTTP/1.1\r\n${H}\r\n"
seed valid-ipv6-host           '\000' '\000' "GET / HTTP/1.1\r\nHost: [::1]:8888\r\n\r\n"
seed valid-connection-close    '\002' '\013' "GET / HTTP/1.1\r\n${H}Connection: close\r\n\r\n$GET"
seed valid-keepalive-cap       '\042' '\004' "$GET$GET$GET$GET"
seed valid-timeout-mid-head    '\010' '\000' "GET / HTTP/1.1\r\nHo"
seed valid-drain               '\004' '\000' "$GET$GET"
seed smuggle-cl-te             '\002' '\021' "POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n$GET"
seed smuggle-te-cl             '\002' '\022' "POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n$GET"
seed smuggle-two-cl            '\001' '\000' "POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!$GET"
seed smuggle-te-chunked-identity '\000' '\000' "POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n$GET"
seed smuggle-invalid-chunk     '\002' '\023' "POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nzz\r\nhi\r\n0\r\n\r\n$GET"
seed smuggle-chunk-overflow    '\003' '\024' "POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nfffffffffffffffffffff\r\n$GET"
seed smuggle-negative-cl       '\000' '\000' "POST / HTTP/1.1\r\n${H}Content-Length: -1\r\n\r\n$GET"
seed smuggle-chunk-no-crlf     '\001' '\000' "POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n$GET"
seed smuggle-http10-chunked    '\002' '\025' "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n$GET"
seed smuggle-te-space          '\000' '\000' "POST / HTTP/1.1\r\n${H}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n$GET"
seed bad-obs-fold              '\002' '\026' "GET / HTTP/1.1\r\n${H}X-A: a\r\n b\r\n\r\n$GET"
seed bad-bare-lf               '\000' '\000' "GET / HTTP/1.1\n${H}\n$GET"
seed bad-nul                   '\001' '\000' "GET /\000 HTTP/1.1\r\n${H}\r\n$GET"
seed bad-nul-in-value          '\000' '\000' "GET / HTTP/1.1\r\n${H}X: a\000b\r\n\r\n"
seed bad-two-hosts             '\000' '\000' "GET / HTTP/1.1\r\n${H}${H}\r\n$GET"
seed bad-version               '\000' '\000' "GET / HTTP/2.0\r\n${H}\r\n"
seed limit-uri                 '\022' '\027' "GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n${H}\r\n"
seed limit-headers             '\022' '\030' "GET / HTTP/1.1\r\n${H}a: 1\r\nb: 2\r\nc: 3\r\nd: 4\r\ne: 5\r\nf: 6\r\ng: 7\r\nh: 8\r\ni: 9\r\n\r\n"
seed limit-body                '\022' '\031' "POST / HTTP/1.1\r\n${H}Content-Length: 101\r\n\r\n"
seed switch-status             '\100' '\000' "GET /?status=503 HTTP/1.1\r\n${H}\r\nHEAD /?status=204 HTTP/1.1\r\n${H}\r\n$GET"
seed switch-delay-pipelined    '\102' '\032' "GET /?delay=0.5&status=201 HTTP/1.1\r\n${H}\r\nGET /?delay=1 HTTP/1.1\r\n${H}\r\n$GET"
seed switch-echo               '\101' '\000' "PUT /a?echo&x=%%22 HTTP/1.1\r\n${H}X-A: \"q\"\\\r\nContent-Length: 3\r\n\r\nabc$GET"
seed switch-echo-chunked       '\103' '\033' "POST /?echo HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nT: 1\r\n\r\n$GET"
seed switch-malformed          '\102' '\034' "GET /?status=99 HTTP/1.1\r\n${H}\r\nGET /?delay=x HTTP/1.1\r\n${H}\r\nGET /?echo=1&echo HTTP/1.1\r\n${H}\r\nGET /?delay=1&delay=2 HTTP/1.1\r\n${H}\r\n$GET"
seed switch-unknown-method     '\100' '\000' "BREW /?echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\nOPTIONS * HTTP/1.1\r\n${H}\r\n"
seed switch-delay-drain        '\104' '\000' "GET /?delay=2 HTTP/1.1\r\n${H}\r\n$GET"
seed switch-delay-close        '\100' '\000' "GET /?delay=1 HTTP/1.1\r\n${H}Connection: close\r\n\r\n$GET"
# Found by the fuzzer: llhttp reports the known method GET of GETGET… before it fails on it.
seed unknown-method-after-get  '\042' '\004' "GETGETample.!"
