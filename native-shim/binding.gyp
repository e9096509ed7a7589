{
  "targets": [
    {
      "target_name": "pagefs_native",
      "sources": [
        "src/addon.c",
        "src/js.c",
        "src/session.c",
        "src/ops.c",
        "src/reply.c",
        "src/notify.c",
        "src/sys.c",
        "src/mapping.c"
      ],
      "defines": ["_GNU_SOURCE", "NAPI_VERSION=8"],
      "cflags_c": ["-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter", "<!@(pkg-config --cflags fuse3)"],
      "libraries": ["<!@(pkg-config --libs fuse3)"]
    }
  ]
}
