{
  "targets": [{
    "target_name": "ns_time",
    "sources": ["ns_time.c"],
    "cflags": ["-O2", "-Wall"]
  }]
}
