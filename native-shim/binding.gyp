# native-shim: the N-API addon over libfuse3's low-level API (see src/shim.h).
{
  "targets": [
    {
      "target_name": "pagefs_native",
      "sources": [
        "src/addon.c",
        "src/js.c",
        "src/session.c",
        "src/rbuf.c",
        "src/events.c",
        "src/mounttab.c",
        "src/ops.c",
        "src/reply.c",
        "src/rawio.c",
        "src/statx.c",
        "src/notify.c",
        "src/sys.c",
        "src/mapping.c"
      ],
      "defines": ["_GNU_SOURCE", "NAPI_VERSION=8"],
      "cflags_c": ["-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter", "<!@(pkg-config --cflags fuse3)"],
      # -z nodelete: libfuse threads run our callbacks until the process exits, so the
      # addon must stay mapped even when Node unloads it with the worker_thread that
      # loaded it.
      "ldflags": ["-Wl,-z,nodelete"],
      "libraries": ["<!@(pkg-config --libs fuse3)"]
    }
  ]
}
