{
  "targets": [
    {
      "target_name": "weft_native",
      "sources": [
        "src/addon.cc",
        "src/aead.cc",
        "src/allowed_ips.cc",
        "src/crypto/blake2s.cc",
        "src/crypto/chacha.cc",
        "src/crypto/tai64n.cc",
        "src/crypto/test_hooks.cc",
        "src/crypto/x25519.cc",
        "src/crypto_pool.cc",
        "src/device.cc",
        "src/device_handshake.cc",
        "src/device_receive.cc",
        "src/device_send.cc",
        "src/device_wrap.cc",
        "src/endpoint.cc",
        "src/events.cc",
        "src/handshake/cookie.cc",
        "src/handshake/noise.cc",
        "src/handshake/ratelimiter.cc",
        "src/handshake/test_hooks.cc",
        "src/handshake/workers.cc",
        "src/icmp.cc",
        "src/js_args.cc",
        "src/offload.cc",
        "src/test_hooks.cc",
        "src/tun.cc",
        "src/udp.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++20", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "ldflags": ["-pthread"]
    }
  ]
}
