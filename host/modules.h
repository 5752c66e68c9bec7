/* modules.h — the native modules every script generation gets in
 * package.preload, as host.<id>. One line per binding:
 * HOST_MODULE(id, open function). The binding's header goes in bindings.h. */
HOST_MODULE(log, host_log_open)
HOST_MODULE(json, host_json_open)
