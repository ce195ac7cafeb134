// TCP segmentation and receive coalescing between the TUN's virtio-net header (IFF_VNET_HDR with
// TUNSETOFFLOAD TSO4/TSO6/CSUM) and WireGuard's one-packet-per-datagram transport.
//
// Sending: the kernel hands the TUN one TCP "super-packet" of up to 64 KiB per read instead of ~45
// MTU-sized ones; GsoSplitter cuts it into the segments the kernel would have sent (what a NIC does
// with TSO), each of which becomes one transport message.
// Receiving: consecutive decrypted segments of one TCP flow are merged by TcpCoalescer into one
// super-packet per TUN write (what GRO does on a NIC), so the kernel's TCP stack sees a few large
// packets instead of many small ones. Both sides thus cost one system call per ~64 KiB.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <vector>

namespace weft {

constexpr size_t kVnetHdrSize = 10;  // struct virtio_net_hdr (no num_buffers: TUNSETVNETHDRSZ default)
constexpr uint8_t kVnetFlagNeedsCsum = 1;
constexpr uint8_t kVnetGsoNone = 0;
constexpr uint8_t kVnetGsoTcpV4 = 1;
constexpr uint8_t kVnetGsoTcpV6 = 4;
constexpr uint8_t kVnetGsoEcn = 0x80;
constexpr size_t kMaxIpPacket = 65535;

struct VnetHeader {
  uint8_t flags = 0;
  uint8_t gsoType = 0;
  uint16_t hdrLen = 0;
  uint16_t gsoSize = 0;
  uint16_t csumStart = 0;
  uint16_t csumOffset = 0;
};

/** The header in the TUN's byte order (host order: legacy virtio, no TUNSETVNETLE/BE). */
VnetHeader readVnetHeader(const uint8_t* p);
void writeVnetHeader(uint8_t* p, const VnetHeader& h);

/**
 * One packet read from the TUN, as the segments to encrypt. For gsoType none the packet is one
 * segment whose checksum is completed when the kernel left it partial (NEEDS_CSUM). For TCPv4/v6
 * the payload is cut into gsoSize pieces: IPv4 length, ID (+1 per segment) and header checksum,
 * IPv6 payload length, TCP sequence number, flags (FIN and PSH on the last segment only, CWR on the
 * first only) and the full TCP checksum are rewritten per segment.
 */
class GsoSplitter {
 public:
  /** False when the packet and header are inconsistent (the caller drops and counts it). */
  bool init(const VnetHeader& h, const uint8_t* pkt, size_t len);
  size_t count() const { return count_; }
  /** Upper bound on any segment's length. */
  size_t maxSegmentLength() const { return segMax_; }
  /** Writes segment i (< count()) to `out` and returns its length. */
  size_t write(size_t i, uint8_t* out) const;

 private:
  const uint8_t* pkt_ = nullptr;
  size_t len_ = 0;
  size_t count_ = 0;
  size_t segMax_ = 0;
  bool tcp_ = false;           // segmented TCP (else: copy, maybe completing a checksum)
  bool completeCsum_ = false;  // for the single-packet case
  size_t csumStart_ = 0, csumField_ = 0;
  bool udpCsum_ = false;
  bool v6_ = false;
  size_t ipLen_ = 0, hdrLen_ = 0, gso_ = 0, payload_ = 0;
};

/**
 * Merges consecutive in-order TCP segments of the same flow into super-packets for the TUN, and
 * hands every packet to `write` exactly once, preceded by its virtio-net header. Per-flow order is
 * exact: a packet that cannot join its flow's open item closes that item, and items are written in
 * the order their first packet arrived. A segment joins only if the merge is lossless (same
 * headers but for length/ID/seq/checksum, contiguous sequence, equal segment sizes with a shorter
 * or PSH segment closing the item) and its IPv4 header and TCP checksums verify, so the kernel
 * never accepts on our word a segment it would have dropped. At most 64 items are held; a new one
 * beyond that writes out the oldest. A merged write the TUN refuses is redone as its segments.
 */
/** A TCP packet's layout as the coalescer reads it (offload.cc fills it). */
struct TcpView {
  bool v6 = false;
  size_t ipLen = 0;   // IP header length
  size_t tcpLen = 0;  // TCP header length
  size_t payload = 0;
  uint8_t flags = 0;
  uint32_t seq = 0;
};

class TcpCoalescer {
 public:
  /** `write(buf, len)`: buf starts with the kVnetHdrSize-byte header; returns false on failure. */
  using Writer = std::function<bool(uint8_t* buf, size_t len)>;
  /** `merge` false: every packet is written on its own (a TUN without offloads). */
  TcpCoalescer(Writer write, bool merge);
  ~TcpCoalescer();

  /**
   * Queues one IP packet of exactly `len` bytes. Both the packet and the kVnetHdrSize bytes before
   * it (scratch for the header) must stay untouched until flush().
   */
  void add(uint8_t* pkt, size_t len);
  /** Writes every queued item in order; the result counts since the last flush. */
  struct Result {
    uint64_t written = 0;  // packets (segments) the TUN took
    uint64_t failed = 0;   // packets it refused
    uint64_t merged = 0;   // writes that carried more than one segment
  };
  Result flush();

 private:
  struct Item;
  void closeFlow(const uint8_t* pkt, size_t len);
  bool append(Item& item, const uint8_t* pkt, const TcpView& v);
  void writeItem(Item& item, Result* r);
  void writeSegments(const VnetHeader& h, const uint8_t* pkt, size_t len, Result* r);

  Writer write_;
  bool merge_;
  std::deque<Item> items_;
  std::vector<std::unique_ptr<uint8_t[]>> freeBuffers_;
  std::unique_ptr<uint8_t[]> scratch_;  // one segment, when a merged write must be redone
  unsigned refusedMerges_ = 0;
  Result pending_;
};

}  // namespace weft
