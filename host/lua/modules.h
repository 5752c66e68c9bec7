/* modules.h — the native modules every script generation gets in
 * package.preload, as host.<id>. One line per binding:
 * HOST_MODULE(id, open function). The binding's header goes in bindings.h. */
HOST_MODULE(log, host_log_open)
HOST_MODULE(json, host_json_open)
HOST_MODULE(jwt, host_jwt_open)
HOST_MODULE(crypto, host_crypto_open)
HOST_MODULE(password, host_password_open)
HOST_MODULE(mail, host_mail_open)
HOST_MODULE(db, host_db_open)
HOST_MODULE(metrics, host_metrics_open)
