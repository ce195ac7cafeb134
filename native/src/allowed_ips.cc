#include "allowed_ips.h"

#include <tuple>

namespace weft {
namespace {

uint64_t load64be(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}

uint32_t load32be(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

uint32_t mask32(unsigned bits) { return bits == 0 ? 0 : ~uint32_t{0} << (32 - bits); }
uint64_t mask64(unsigned bits) { return bits == 0 ? 0 : bits >= 64 ? ~uint64_t{0} : ~uint64_t{0} << (64 - bits); }

void mask6(unsigned bits, uint64_t* hi, uint64_t* lo) {
  if (bits <= 64) {
    *hi &= mask64(bits);
    *lo = 0;
  } else {
    *lo &= mask64(bits - 64);
  }
}

}  // namespace

bool Prefix::operator<(const Prefix& o) const {
  return std::tie(family, bits, hi, lo) < std::tie(o.family, o.bits, o.hi, o.lo);
}

bool Prefix::operator==(const Prefix& o) const {
  return family == o.family && bits == o.bits && hi == o.hi && lo == o.lo;
}

bool makePrefix(uint8_t family, uint8_t bits, const uint8_t* bytes, Prefix* out) {
  if (family == 4) {
    if (bits > 32) return false;
    *out = Prefix{4, bits, 0, uint64_t{load32be(bytes) & mask32(bits)}};
    return true;
  }
  if (family == 6) {
    if (bits > 128) return false;
    uint64_t hi = load64be(bytes), lo = load64be(bytes + 8);
    mask6(bits, &hi, &lo);
    *out = Prefix{6, bits, hi, lo};
    return true;
  }
  return false;
}

size_t AllowedIps::Key6Hash::operator()(const Key6& k) const {
  // splitmix64-style finaliser over both halves.
  uint64_t x = k.hi ^ (k.lo * 0x9E3779B97F4A7C15ull);
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 31;
  return static_cast<size_t>(x);
}

void AllowedIps::insert(const Prefix& p, PeerId peer) {
  if (p.family == 4) {
    auto [it, fresh] = v4_[p.bits].try_emplace(static_cast<uint32_t>(p.lo), peer);
    if (!fresh) {
      if (it->second == peer) return;
      auto owner = byPeer_.find(it->second);
      if (owner != byPeer_.end()) owner->second.erase(p);
      it->second = peer;
    }
    v4Lengths_ |= uint64_t{1} << p.bits;
  } else {
    auto [it, fresh] = v6_[p.bits].try_emplace(Key6{p.hi, p.lo}, peer);
    if (!fresh) {
      if (it->second == peer) return;
      auto owner = byPeer_.find(it->second);
      if (owner != byPeer_.end()) owner->second.erase(p);
      it->second = peer;
    }
    v6Lengths_[p.bits / 64] |= uint64_t{1} << (p.bits % 64);
  }
  byPeer_[peer].insert(p);
}

void AllowedIps::erase(const Prefix& p) {
  if (p.family == 4) {
    auto& m = v4_[p.bits];
    m.erase(static_cast<uint32_t>(p.lo));
    if (m.empty()) v4Lengths_ &= ~(uint64_t{1} << p.bits);
  } else {
    auto& m = v6_[p.bits];
    m.erase(Key6{p.hi, p.lo});
    if (m.empty()) v6Lengths_[p.bits / 64] &= ~(uint64_t{1} << (p.bits % 64));
  }
}

void AllowedIps::remove(const Prefix& p, PeerId peer) {
  auto owner = byPeer_.find(peer);
  if (owner == byPeer_.end() || owner->second.erase(p) == 0) return;
  erase(p);
  if (owner->second.empty()) byPeer_.erase(owner);
}

void AllowedIps::removePeer(PeerId peer) {
  auto owner = byPeer_.find(peer);
  if (owner == byPeer_.end()) return;
  for (const Prefix& p : owner->second) erase(p);
  byPeer_.erase(owner);
}

std::optional<PeerId> AllowedIps::lookup4(const uint8_t addr[4]) const {
  uint32_t a = load32be(addr);
  for (uint64_t lengths = v4Lengths_; lengths != 0;) {
    unsigned bits = 63 - static_cast<unsigned>(__builtin_clzll(lengths));
    lengths &= ~(uint64_t{1} << bits);
    const auto& m = v4_[bits];
    auto it = m.find(a & mask32(bits));
    if (it != m.end()) return it->second;
  }
  return std::nullopt;
}

std::optional<PeerId> AllowedIps::lookup6(const uint8_t addr[16]) const {
  uint64_t hi = load64be(addr), lo = load64be(addr + 8);
  for (int word = 2; word >= 0; --word) {
    for (uint64_t lengths = v6Lengths_[word]; lengths != 0;) {
      unsigned bit = 63 - static_cast<unsigned>(__builtin_clzll(lengths));
      lengths &= ~(uint64_t{1} << bit);
      unsigned bits = static_cast<unsigned>(word) * 64 + bit;
      Key6 key{hi, lo};
      mask6(bits, &key.hi, &key.lo);
      const auto& m = v6_[bits];
      auto it = m.find(key);
      if (it != m.end()) return it->second;
    }
  }
  return std::nullopt;
}

std::vector<Prefix> AllowedIps::prefixesOf(PeerId peer) const {
  auto owner = byPeer_.find(peer);
  if (owner == byPeer_.end()) return {};
  return {owner->second.begin(), owner->second.end()};
}

size_t AllowedIps::size() const {
  size_t n = 0;
  for (const auto& [peer, set] : byPeer_) n += set.size();
  return n;
}

}  // namespace weft
