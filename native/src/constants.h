// Protocol constants of the transport path (WireGuard whitepaper §6, wireguard-go device/constants.go).
#pragma once

#include <cstddef>
#include <cstdint>

namespace weft {

// Message types and the exact sizes the receive path accepts.
constexpr uint8_t kMessageInitiation = 1;
constexpr uint8_t kMessageResponse = 2;
constexpr uint8_t kMessageCookieReply = 3;
constexpr uint8_t kMessageTransport = 4;
constexpr size_t kInitiationSize = 148;
constexpr size_t kResponseSize = 92;
constexpr size_t kCookieReplySize = 64;

// Transport message: type(4) receiver(4) counter(8) | ciphertext | tag(16).
constexpr size_t kTransportHeaderSize = 16;
constexpr size_t kAeadTagSize = 16;
constexpr size_t kAeadKeySize = 32;
constexpr size_t kTransportMinSize = kTransportHeaderSize + kAeadTagSize;  // a keepalive
constexpr size_t kPaddingMultiple = 16;

constexpr uint64_t kRekeyAfterMessages = uint64_t{1} << 60;
// 2^64 - 2^13 - 1, as the whitepaper and wireguard-go define it.
constexpr uint64_t kRejectAfterMessages = UINT64_MAX - (uint64_t{1} << 13);

constexpr int64_t kSecond = 1'000'000'000;  // nanoseconds
constexpr int64_t kRekeyAfterTime = 120 * kSecond;
constexpr int64_t kRejectAfterTime = 180 * kSecond;
constexpr int64_t kKeepaliveTimeout = 10 * kSecond;
constexpr int64_t kRekeyTimeout = 5 * kSecond;
// The initiator asks for a new handshake once when it receives under a keypair this old.
constexpr int64_t kRekeyOnReceiveAge = kRejectAfterTime - kKeepaliveTimeout - kRekeyTimeout;

constexpr size_t kMaxStagedPackets = 128;    // per peer (kernel MAX_STAGED_PACKETS)
constexpr size_t kMaxQueuedHandshakes = 1024;  // handshake completions waiting for JavaScript

constexpr size_t kMaxDatagram = 65535;

}  // namespace weft
