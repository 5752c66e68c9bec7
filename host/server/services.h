/* services.h — per-worker native services (connection pools, curl multi,
 * hashing threads). One line each: HOST_SERVICE(init, shutdown), where
 *   int  init(struct event_base *base);   0, or -1 after logging why
 *   void shutdown(void);                   idempotent; frees what init made
 * Workers call every init after fork, before serving, in this order, and
 * every shutdown in reverse order after draining. Each service reads its own
 * settings from the environment (config_env_long / config_env_str). */
/* metrics first: it samples the others every second until they have all
 * stopped (mail's shutdown flush included), and its port answers meanwhile */
HOST_SERVICE(host_metrics_init, host_metrics_shutdown)
HOST_SERVICE(host_password_init, host_password_shutdown)
HOST_SERVICE(host_transfer_init, host_transfer_shutdown)
/* Firehose right after transfer: it sends over the transfer thread, so it
 * stops before it, and after mail and db, so their shutdown lines ship */
HOST_SERVICE(host_firehose_init, host_firehose_shutdown)
HOST_SERVICE(host_mail_init, host_mail_shutdown)
HOST_SERVICE(host_db_init, host_db_shutdown)
