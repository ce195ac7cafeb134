// Cryptokey routing table: longest-prefix match from an address to a peer id, one table per
// address family. Each prefix length in use has its own hash map from masked address to peer, and a
// bitmask of the lengths in use lets a lookup probe only those, longest first. A prefix belongs to at
// most one peer: inserting it for another peer moves it. Not thread-safe by itself (the device
// guards it with its table lock).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>
#include <vector>

namespace weft {

using PeerId = uint32_t;

/** A prefix in canonical form: host bits cleared. IPv4 uses the low 32 bits of `lo`. */
struct Prefix {
  uint8_t family;  // 4 or 6
  uint8_t bits;
  uint64_t hi;
  uint64_t lo;
  bool operator<(const Prefix& o) const;
  bool operator==(const Prefix& o) const;
};

/** Builds a canonical prefix from address bytes (4 or 16, network order); false on a bad length. */
bool makePrefix(uint8_t family, uint8_t bits, const uint8_t* bytes, Prefix* out);

class AllowedIps {
 public:
  void insert(const Prefix& p, PeerId peer);
  /** Removes `p` if `peer` owns it. */
  void remove(const Prefix& p, PeerId peer);
  void removePeer(PeerId peer);
  std::optional<PeerId> lookup4(const uint8_t addr[4]) const;
  std::optional<PeerId> lookup6(const uint8_t addr[16]) const;
  std::vector<Prefix> prefixesOf(PeerId peer) const;
  size_t size() const;

 private:
  struct Key6 {
    uint64_t hi;
    uint64_t lo;
    bool operator==(const Key6& o) const { return hi == o.hi && lo == o.lo; }
  };
  struct Key6Hash {
    size_t operator()(const Key6& k) const;
  };

  void erase(const Prefix& p);

  std::array<std::unordered_map<uint32_t, PeerId>, 33> v4_;
  std::array<std::unordered_map<Key6, PeerId, Key6Hash>, 129> v6_;
  uint64_t v4Lengths_ = 0;                     // bit n: some /n prefix present
  std::array<uint64_t, 3> v6Lengths_{0, 0, 0};  // bit n of the 129-bit set
  std::unordered_map<PeerId, std::set<Prefix>> byPeer_;
};

}  // namespace weft
