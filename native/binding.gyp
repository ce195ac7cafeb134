{
  "targets": [
    {
      "target_name": "weft_native",
      "sources": [
        "src/addon.cc",
        "src/aead.cc",
        "src/allowed_ips.cc",
        "src/crypto_pool.cc",
        "src/device.cc",
        "src/device_wrap.cc",
        "src/endpoint.cc",
        "src/events.cc",
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
