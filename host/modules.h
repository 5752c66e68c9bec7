/* modules.h — the native modules every script generation gets in
 * package.preload. One line per binding: HOST_MODULE(name, open function). */
HOST_MODULE("host.log", host_log_open)
HOST_MODULE("host.json", host_json_open)
