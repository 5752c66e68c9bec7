/* request.h — an HTTP request served by a script task. */
#ifndef MOONKEEP_REQUEST_H
#define MOONKEEP_REQUEST_H

struct evhttp_request;

/* evhttp's generic callback: `arg` is the struct worker. */
void host_request_cb(struct evhttp_request *req, void *arg);

#endif
