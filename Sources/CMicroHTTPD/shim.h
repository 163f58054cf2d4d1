#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <microhttpd.h>

// MHD_start_daemon and MHD_get_connection_info are variadic, which Swift cannot
// call, so these wrappers pass options through MHD_OPTION_ARRAY instead.

static inline struct MHD_Daemon *tapedeck_mhd_start(unsigned int flags,
                                                    MHD_AccessHandlerCallback handler,
                                                    void *handler_context,
                                                    struct MHD_OptionItem *options) {
    return MHD_start_daemon(flags, 0, NULL, NULL, handler, handler_context,
                            MHD_OPTION_ARRAY, options, MHD_OPTION_END);
}

static inline int tapedeck_mhd_connection_fd(struct MHD_Connection *connection) {
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
    return info == NULL ? -1 : info->connect_fd;
}

static inline uint16_t tapedeck_mhd_bound_port(struct MHD_Daemon *daemon) {
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT);
    return info == NULL ? 0 : info->port;
}

// Formats one libmicrohttpd log message, whose arguments arrive as a va_list.
static inline void tapedeck_format_log(char *buffer, size_t size, const char *format, va_list arguments) {
    vsnprintf(buffer, size, format, arguments);
}

typedef void (*tapedeck_mhd_log_callback)(void *context, const char *message);

struct tapedeck_log_target {
    tapedeck_mhd_log_callback callback;
    void *context;
};

// Formats in C and hands Swift a finished string, because a va_list cannot
// cross into Swift portably.
static inline void tapedeck_mhd_log_trampoline(void *cls, const char *format, va_list arguments) {
    struct tapedeck_log_target *target = (struct tapedeck_log_target *)cls;
    char message[512];
    vsnprintf(message, sizeof message, format, arguments);
    target->callback(target->context, message);
}

static inline void *tapedeck_mhd_log_trampoline_pointer(void) {
    return (void *)&tapedeck_mhd_log_trampoline;
}

static inline void *tapedeck_mhd_socket_context(struct MHD_Connection *connection) {
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info == NULL ? NULL : info->socket_context;
}

// POLLRDHUP is Linux-specific and only visible with _GNU_SOURCE.
#define TAPEDECK_POLLRDHUP 0x2000
