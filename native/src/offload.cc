#include "offload.h"

#include <algorithm>
#include <cstring>

#include "checksum.h"

namespace weft {
namespace {

constexpr uint8_t kProtoTcp = 6;
constexpr uint8_t kTcpFin = 0x01, kTcpPsh = 0x08, kTcpAck = 0x10;
constexpr uint8_t kTcpCwr = 0x80;
constexpr size_t kTcpHeaderMin = 20;
// Items held at once; a new one beyond writes out the oldest. Bounds memory (one 64 KiB buffer per
// merged item) and the scan for a packet's flow.
constexpr size_t kMaxItems = 64;
// Merged writes the TUN refused in a row before merging stops for good.
constexpr unsigned kMaxRefusedMerges = 16;

uint16_t get16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
void put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
uint32_t get32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
void put32(uint8_t* p, uint32_t v) {
  put16(p, static_cast<uint16_t>(v >> 16));
  put16(p + 2, static_cast<uint16_t>(v));
}

// Source and destination addresses are adjacent in both IP versions.
const uint8_t* addresses(const uint8_t* ip, bool v6) { return ip + (v6 ? 8 : 12); }
size_t addressLength(bool v6) { return v6 ? 16 : 4; }

uint64_t tcpPseudoSum(const uint8_t* ip, bool v6, uint32_t tcpLength) {
  const uint8_t* a = addresses(ip, v6);
  size_t n = addressLength(v6);
  return pseudoHeaderSum(a, a + n, n, kProtoTcp, tcpLength);
}

enum class TcpKind { NotTcp, Ineligible, Eligible };

// Classifies a packet of exactly `len` IP bytes. NotTcp: no readable TCP ports (not TCP, a
// non-first fragment, truncated). Ineligible: a TCP flow, but this packet must pass unmerged.
TcpKind classify(const uint8_t* p, size_t len, TcpView* v) {
  if (len < 1) return TcpKind::NotTcp;
  unsigned version = p[0] >> 4;
  bool eligible = true;
  if (version == 4) {
    if (len < 20) return TcpKind::NotTcp;
    v->ipLen = size_t{p[0] & 0x0fu} * 4;
    if (v->ipLen < 20 || p[9] != kProtoTcp || (get16(p + 6) & 0x1fff) != 0) return TcpKind::NotTcp;
    if (v->ipLen != 20 || (get16(p + 6) & 0x2000) != 0) eligible = false;  // options or MF
    v->v6 = false;
  } else if (version == 6) {
    if (len < 40 || p[6] != kProtoTcp) return TcpKind::NotTcp;  // extension headers: not merged
    v->ipLen = 40;
    v->v6 = true;
  } else {
    return TcpKind::NotTcp;
  }
  if (len < v->ipLen + kTcpHeaderMin) return TcpKind::NotTcp;
  const uint8_t* tcp = p + v->ipLen;
  v->tcpLen = (size_t{tcp[12]} >> 4) * 4;
  if (v->tcpLen < kTcpHeaderMin || v->ipLen + v->tcpLen > len) return TcpKind::Ineligible;
  v->payload = len - v->ipLen - v->tcpLen;
  v->flags = tcp[13];
  v->seq = get32(tcp + 4);
  if (!eligible || v->payload == 0 || (v->flags & ~(kTcpAck | kTcpPsh)) != 0 || !(v->flags & kTcpAck))
    return TcpKind::Ineligible;
  if (!v->v6 && checksumFold(checksumAdd(p, 20, 0)) != 0xffff) return TcpKind::Ineligible;
  uint32_t l4 = static_cast<uint32_t>(len - v->ipLen);
  if (checksumFold(checksumAdd(tcp, l4, tcpPseudoSum(p, v->v6, l4))) != 0xffff) return TcpKind::Ineligible;
  return TcpKind::Eligible;
}

// An IP packet that may carry TCP although classify() could not read its ports.
bool mayHideTcp(const uint8_t* p, size_t len) {
  if (len >= 40 && (p[0] >> 4) == 6) {
    switch (p[6]) {
      case 0: case 43: case 44: case 51: case 60: case 135: case 139: case 140:  // extension headers
        return true;
      default:
        return false;
    }
  }
  return len >= 20 && (p[0] >> 4) == 4 && p[9] == kProtoTcp;
}

bool sameFlow(const uint8_t* a, const uint8_t* b, bool v6, size_t ipLenA, size_t ipLenB) {
  size_t n = 2 * addressLength(v6);
  return std::memcmp(addresses(a, v6), addresses(b, v6), n) == 0 && std::memcmp(a + ipLenA, b + ipLenB, 4) == 0;
}

}  // namespace

VnetHeader readVnetHeader(const uint8_t* p) {
  VnetHeader h;
  h.flags = p[0];
  h.gsoType = p[1];
  std::memcpy(&h.hdrLen, p + 2, 2);
  std::memcpy(&h.gsoSize, p + 4, 2);
  std::memcpy(&h.csumStart, p + 6, 2);
  std::memcpy(&h.csumOffset, p + 8, 2);
  return h;
}

void writeVnetHeader(uint8_t* p, const VnetHeader& h) {
  p[0] = h.flags;
  p[1] = h.gsoType;
  std::memcpy(p + 2, &h.hdrLen, 2);
  std::memcpy(p + 4, &h.gsoSize, 2);
  std::memcpy(p + 6, &h.csumStart, 2);
  std::memcpy(p + 8, &h.csumOffset, 2);
}

// ---- GsoSplitter --------------------------------------------------------------------------------

bool GsoSplitter::init(const VnetHeader& h, const uint8_t* pkt, size_t len) {
  pkt_ = pkt;
  len_ = len;
  count_ = 0;
  tcp_ = completeCsum_ = udpCsum_ = false;
  uint8_t type = h.gsoType & static_cast<uint8_t>(~kVnetGsoEcn);
  bool needsCsum = (h.flags & kVnetFlagNeedsCsum) != 0;
  if (len == 0 || len > kMaxIpPacket) return false;
  if (type == kVnetGsoNone) {
    if (needsCsum) {
      if (size_t{h.csumStart} >= len || size_t{h.csumStart} + h.csumOffset + 2 > len) return false;
      completeCsum_ = true;
      csumStart_ = h.csumStart;
      csumField_ = size_t{h.csumStart} + h.csumOffset;
      udpCsum_ = h.csumOffset == 6;  // UDP's checksum field; 0 means "none" there
    }
    count_ = 1;
    segMax_ = len;
    return true;
  }
  if (type != kVnetGsoTcpV4 && type != kVnetGsoTcpV6) return false;
  v6_ = type == kVnetGsoTcpV6;
  if (v6_) {
    if (len < 40 || (pkt[0] >> 4) != 6 || size_t{get16(pkt + 4)} + 40 != len) return false;
    // Hop-by-hop and destination options may stand before TCP (the kernel hands such packets to
    // a device with checksum offload); they are copied into every segment unchanged. A routing
    // header is refused: it would change the destination the TCP checksum is computed over.
    size_t off = 40;
    uint8_t next = pkt[6];
    for (int k = 0; k < 8 && (next == 0 || next == 60); ++k) {
      if (off + 8 > len) return false;
      next = pkt[off];
      off += (size_t{pkt[off + 1]} + 1) * 8;
    }
    if (next != kProtoTcp || off > len) return false;
    ipLen_ = off;
  } else {
    if (len < 20 || (pkt[0] >> 4) != 4 || pkt[9] != kProtoTcp || get16(pkt + 2) != len) return false;
    ipLen_ = size_t{pkt[0] & 0x0fu} * 4;
    if (ipLen_ < 20 || ipLen_ > len || (get16(pkt + 6) & 0x3fff) != 0) return false;  // fragments
  }
  // The kernel's checksum position is only a hint for GSO packets (every checksum is recomputed),
  // but a NEEDS_CSUM header pointing elsewhere than the TCP checksum means we misread the packet.
  if (needsCsum && (h.csumStart != ipLen_ || h.csumOffset != 16)) return false;
  if (len < ipLen_ + kTcpHeaderMin) return false;
  size_t tcpLen = (size_t{pkt[ipLen_ + 12]} >> 4) * 4;
  if (tcpLen < kTcpHeaderMin || ipLen_ + tcpLen > len || h.gsoSize == 0) return false;
  hdrLen_ = ipLen_ + tcpLen;
  gso_ = h.gsoSize;
  payload_ = len - hdrLen_;
  count_ = payload_ == 0 ? 1 : (payload_ + gso_ - 1) / gso_;
  segMax_ = hdrLen_ + std::min(gso_, payload_);
  tcp_ = true;
  return true;
}

size_t GsoSplitter::write(size_t i, uint8_t* out) const {
  if (!tcp_) {
    std::memcpy(out, pkt_, len_);
    if (completeCsum_) {
      // The field holds the pseudo-header sum; the sum from csum_start on includes it.
      uint16_t c = static_cast<uint16_t>(~checksumFold(checksumAdd(out + csumStart_, len_ - csumStart_, 0)));
      if (c == 0 && udpCsum_) c = 0xffff;
      storeChecksum(out + csumField_, c);
    }
    return len_;
  }
  size_t offset = i * gso_;
  size_t n = std::min(gso_, payload_ - offset);
  size_t total = hdrLen_ + n;
  std::memcpy(out, pkt_, hdrLen_);
  std::memcpy(out + hdrLen_, pkt_ + hdrLen_ + offset, n);
  if (v6_) {
    put16(out + 4, static_cast<uint16_t>(total - 40));
  } else {
    put16(out + 2, static_cast<uint16_t>(total));
    put16(out + 4, static_cast<uint16_t>(get16(pkt_ + 4) + i));
    fillIpv4HeaderChecksum(out, ipLen_);
  }
  uint8_t* tcp = out + ipLen_;
  put32(tcp + 4, get32(pkt_ + ipLen_ + 4) + static_cast<uint32_t>(offset));
  uint8_t flags = tcp[13];
  if (i + 1 < count_) flags &= static_cast<uint8_t>(~(kTcpFin | kTcpPsh));
  if (i > 0) flags &= static_cast<uint8_t>(~kTcpCwr);
  tcp[13] = flags;
  tcp[16] = tcp[17] = 0;
  uint32_t l4 = static_cast<uint32_t>(total - ipLen_);
  storeChecksum(tcp + 16, static_cast<uint16_t>(~checksumFold(checksumAdd(tcp, l4, tcpPseudoSum(out, v6_, l4)))));
  return total;
}

// ---- TcpCoalescer -------------------------------------------------------------------------------

struct TcpCoalescer::Item {
  uint8_t* first = nullptr;         // the first packet, in the caller's buffer
  std::unique_ptr<uint8_t[]> copy;  // header room + merged packet, once a second segment joins
  size_t len = 0;                   // IP length so far
  size_t segments = 1;
  bool open = false;  // may take more segments
  TcpView view;       // of the first segment
  uint32_t nextSeq = 0;
  uint16_t nextId = 0;
  bool push = false;

  uint8_t* packet() const { return copy ? copy.get() + kVnetHdrSize : first; }
};

TcpCoalescer::TcpCoalescer(Writer write, bool merge) : write_(std::move(write)), merge_(merge) {}

TcpCoalescer::~TcpCoalescer() = default;

void TcpCoalescer::add(uint8_t* pkt, size_t len) {
  TcpView v;
  TcpKind kind = merge_ ? classify(pkt, len, &v) : TcpKind::NotTcp;
  if (kind != TcpKind::NotTcp) {
    for (Item& item : items_) {
      if (!item.open || item.view.v6 != v.v6 || !sameFlow(item.packet(), pkt, v.v6, item.view.ipLen, v.ipLen))
        continue;
      if (kind == TcpKind::Eligible && append(item, pkt, v)) return;
      item.open = false;  // anything after this packet must not overtake it
      break;
    }
  } else if (merge_ && mayHideTcp(pkt, len)) {
    // TCP whose ports we cannot read (behind IPv6 extension headers, a later IPv4 fragment): it
    // may belong to any flow between these two hosts, so none of them may grow past it.
    bool v6 = (pkt[0] >> 4) == 6;
    for (Item& item : items_)
      if (item.open && item.view.v6 == v6 &&
          std::memcmp(addresses(item.packet(), v6), addresses(pkt, v6), 2 * addressLength(v6)) == 0)
        item.open = false;
  }
  if (items_.size() >= kMaxItems) {
    // Full: the oldest item goes out first. Writing in order of first arrival is kept, so per-flow
    // order is too; only that item's chance to grow is lost.
    writeItem(items_.front(), &pending_);
    items_.pop_front();
  }
  Item item;
  item.first = pkt;
  item.len = len;
  if (kind == TcpKind::Eligible) {
    item.view = v;
    item.open = !(v.flags & kTcpPsh);
    item.push = (v.flags & kTcpPsh) != 0;
    item.nextSeq = v.seq + static_cast<uint32_t>(v.payload);
    if (!v.v6) item.nextId = static_cast<uint16_t>(get16(pkt + 4) + 1);
  }
  items_.push_back(std::move(item));
}

bool TcpCoalescer::append(Item& item, const uint8_t* pkt, const TcpView& v) {
  const uint8_t* head = item.packet();
  const TcpView& f = item.view;
  const uint8_t* tcp = pkt + v.ipLen;
  const uint8_t* ftcp = head + f.ipLen;
  if (v.seq != item.nextSeq || v.payload > f.payload || item.len + v.payload > kMaxIpPacket) return false;
  if (v.v6) {
    if (std::memcmp(head, pkt, 4) != 0 || head[7] != pkt[7]) return false;  // class, flow label, hops
  } else {
    if (head[1] != pkt[1] || head[8] != pkt[8] || (head[6] & 0x40) != (pkt[6] & 0x40) ||
        get16(pkt + 4) != item.nextId)
      return false;
  }
  if (ftcp[12] != tcp[12] ||                                             // header length, AE, reserved
      std::memcmp(ftcp + 8, tcp + 8, 4) != 0 ||                           // ack
      std::memcmp(ftcp + 14, tcp + 14, 2) != 0 ||                         // window
      std::memcmp(ftcp + kTcpHeaderMin, tcp + kTcpHeaderMin, v.tcpLen - kTcpHeaderMin) != 0)
    return false;
  if (!item.copy) {
    if (!freeBuffers_.empty()) {
      item.copy = std::move(freeBuffers_.back());
      freeBuffers_.pop_back();
    } else {
      item.copy.reset(new uint8_t[kVnetHdrSize + kMaxIpPacket]);
    }
    std::memcpy(item.copy.get() + kVnetHdrSize, item.first, item.len);
  }
  std::memcpy(item.copy.get() + kVnetHdrSize + item.len, tcp + v.tcpLen, v.payload);
  item.len += v.payload;
  item.segments += 1;
  item.nextSeq += static_cast<uint32_t>(v.payload);
  item.nextId = static_cast<uint16_t>(item.nextId + 1);
  if (v.flags & kTcpPsh) item.push = true;
  if (item.push || v.payload < f.payload) item.open = false;
  return true;
}

void TcpCoalescer::writeItem(Item& item, Result* r) {
  uint8_t* buf;
  VnetHeader h;
  if (item.segments == 1) {
    buf = item.first - kVnetHdrSize;
  } else {
    buf = item.copy.get();
    uint8_t* p = buf + kVnetHdrSize;
    const TcpView& f = item.view;
    if (f.v6) {
      put16(p + 4, static_cast<uint16_t>(item.len - 40));
    } else {
      put16(p + 2, static_cast<uint16_t>(item.len));
      fillIpv4HeaderChecksum(p, f.ipLen);
    }
    uint8_t* tcp = p + f.ipLen;
    if (item.push) tcp[13] |= kTcpPsh;
    // CHECKSUM_PARTIAL form: the folded pseudo-header sum, which the kernel completes per
    // segment (or accepts as verified when it delivers the super-packet locally).
    storeChecksum(tcp + 16, checksumFold(tcpPseudoSum(p, f.v6, static_cast<uint32_t>(item.len - f.ipLen))));
    h.flags = kVnetFlagNeedsCsum;
    h.gsoType = f.v6 ? kVnetGsoTcpV6 : kVnetGsoTcpV4;
    h.hdrLen = static_cast<uint16_t>(f.ipLen + f.tcpLen);
    h.gsoSize = static_cast<uint16_t>(f.payload);
    h.csumStart = static_cast<uint16_t>(f.ipLen);
    h.csumOffset = 16;
  }
  writeVnetHeader(buf, h);
  if (write_(buf, kVnetHdrSize + item.len)) {
    r->written += item.segments;
    if (item.segments > 1) {
      r->merged += 1;
      refusedMerges_ = 0;
    }
  } else if (item.segments > 1) {
    writeSegments(h, buf + kVnetHdrSize, item.len, r);
  } else {
    r->failed += 1;
  }
  if (item.copy) freeBuffers_.push_back(std::move(item.copy));
}

void TcpCoalescer::writeSegments(const VnetHeader& h, const uint8_t* pkt, size_t len, Result* r) {
  // The TUN refused a super-packet: cut it back into the segments it was made of (the splitter
  // reproduces them byte for byte) and write those one by one. A TUN that keeps refusing gets no
  // more merged writes.
  if (++refusedMerges_ >= kMaxRefusedMerges) merge_ = false;
  GsoSplitter split;
  if (!split.init(h, pkt, len)) return;  // cannot happen for a header we built
  if (!scratch_) scratch_.reset(new uint8_t[kVnetHdrSize + kMaxIpPacket]);
  writeVnetHeader(scratch_.get(), VnetHeader());
  for (size_t i = 0; i < split.count(); ++i) {
    size_t n = split.write(i, scratch_.get() + kVnetHdrSize);
    if (write_(scratch_.get(), kVnetHdrSize + n))
      r->written += 1;
    else
      r->failed += 1;
  }
}

TcpCoalescer::Result TcpCoalescer::flush() {
  Result r = pending_;
  pending_ = Result();
  for (Item& item : items_) writeItem(item, &r);
  items_.clear();
  return r;
}

}  // namespace weft
