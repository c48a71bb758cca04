// utimensat(2) for Node: fs.utimes takes seconds as a double, which cannot
// hold today's times to the nanosecond (nor say "leave this one alone").
// setTimes(path, atimeSec: bigint, atimeNsec, mtimeSec: bigint, mtimeNsec,
// nofollow) returns 0 or a positive errno; nsec may be UTIME_NOW/UTIME_OMIT.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#define NAPI_VERSION 6
#include <node_api.h>

#define CHECK(call) if ((call) != napi_ok) { napi_throw_error(env, NULL, "ns_time: bad arguments"); return NULL; }

static napi_value set_times (napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL))
  if (argc != 6) { napi_throw_error(env, NULL, "ns_time: setTimes takes 6 arguments"); return NULL; }
  size_t len;
  CHECK(napi_get_value_string_utf8(env, argv[0], NULL, 0, &len))
  char *path = malloc(len + 1);
  if (path == NULL) { napi_throw_error(env, NULL, "ns_time: out of memory"); return NULL; }
  napi_get_value_string_utf8(env, argv[0], path, len + 1, &len);
  struct timespec ts[2];
  int64_t sec;
  int64_t nsec;
  bool lossless;
  bool nofollow;
  if (napi_get_value_bigint_int64(env, argv[1], &sec, &lossless) != napi_ok ||
      napi_get_value_int64(env, argv[2], &nsec) != napi_ok) goto bad;
  ts[0].tv_sec = sec;
  ts[0].tv_nsec = nsec;
  if (napi_get_value_bigint_int64(env, argv[3], &sec, &lossless) != napi_ok ||
      napi_get_value_int64(env, argv[4], &nsec) != napi_ok ||
      napi_get_value_bool(env, argv[5], &nofollow) != napi_ok) goto bad;
  ts[1].tv_sec = sec;
  ts[1].tv_nsec = nsec;
  int res = utimensat(AT_FDCWD, path, ts, nofollow ? AT_SYMLINK_NOFOLLOW : 0);
  free(path);
  napi_value out;
  CHECK(napi_create_int32(env, res == 0 ? 0 : errno, &out))
  return out;
bad:
  free(path);
  napi_throw_error(env, NULL, "ns_time: bad arguments");
  return NULL;
}

static napi_value init (napi_env env, napi_value exports) {
  napi_value fn, now, omit;
  napi_create_function(env, "setTimes", NAPI_AUTO_LENGTH, set_times, NULL, &fn);
  napi_set_named_property(env, exports, "setTimes", fn);
  napi_create_int64(env, UTIME_NOW, &now);
  napi_set_named_property(env, exports, "UTIME_NOW", now);
  napi_create_int64(env, UTIME_OMIT, &omit);
  napi_set_named_property(env, exports, "UTIME_OMIT", omit);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
