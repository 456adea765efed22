/* commands.c: `carlarl serve | predict | config | hwinfo`: configuration, then the work. */
#include "server/commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/buf.h"
#include "core/log.h"
#include "hw/hw.h"
#include "server/offline.h"
#include "server/server.h"

/* Loads the configuration for `command`; on error prints it and returns 2, on --help prints the
 * usage and returns 0, else returns -1 (go on). *out is malloc'd (the struct is large). */
static int load(const char *command, int argc, char **argv, crl_config_t **out,
                crl_config_args_t *args) {
    crl_err err = {{0}};
    memset(args, 0, sizeof(*args));
    args->command = command;
    *out = malloc(sizeof(crl_config_t));
    if (*out == NULL) {
        fprintf(stderr, "carlarl %s: out of memory\n", command);
        return 1;
    }
    if (crl_config_load(*out, argc, argv, args, &err) != CRL_OK) {
        fprintf(stderr, "carlarl %s: %s\n", command, err.msg);
        free(*out);
        *out = NULL;
        return 2;
    }
    if (args->help) {
        crl_config_usage(stdout, command);
        free(*out);
        *out = NULL;
        return 0;
    }
    return -1;
}

int crl_cmd_serve(int argc, char **argv) {
    crl_config_t *c;
    crl_config_args_t args;
    int rc = load("serve", argc, argv, &c, &args);
    if (rc >= 0) return rc;
    crl_err err = {{0}};
    if (crl_server_check(c, &err) != CRL_OK) {
        fprintf(stderr, "carlarl serve: %s\n", err.msg);
        free(c);
        return 2;
    }
    crl_status st = crl_server_run(c, argc, argv, &err);
    if (st != CRL_OK && *err.msg) fprintf(stderr, "carlarl serve: %s\n", err.msg);
    free(c);
    return st == CRL_OK ? 0 : 1;
}

int crl_cmd_predict(int argc, char **argv) {
    crl_config_t *c;
    crl_config_args_t args;
    int rc = load("predict", argc, argv, &c, &args);
    if (rc >= 0) return rc;
    crl_err err = {{0}};
    crl_server_choose_kernels(c);
    crl_status st = crl_offline_predict(c, stdin, stdout, &err);
    if (st != CRL_OK && st != CRL_EINVAL && *err.msg)
        fprintf(stderr, "carlarl predict: %s\n", err.msg);
    free(c);
    return st == CRL_OK ? 0 : 1;
}

int crl_cmd_config(int argc, char **argv) {
    crl_config_t *c;
    crl_config_args_t args;
    int rc = load("config", argc, argv, &c, &args);
    if (rc >= 0) return rc;
    crl_buf out;
    crl_buf_init(&out, 1u << 22);
    if (args.check) {
        crl_err err = {{0}};
        crl_status st = crl_config_check_file(args.check, &err);
        if (st != CRL_OK)
            fprintf(stderr, "%s\n", err.msg);
        else
            printf("%s: ok\n", args.check);
        free(c);
        return st == CRL_OK ? 0 : 2;
    }
    if (args.markdown)
        crl_config_write_markdown(&out);
    else
        crl_config_write_yaml(c, &out);
    fwrite(out.data, 1, out.len, stdout);
    crl_buf_free(&out);
    free(c);
    return 0;
}

int crl_cmd_hwinfo(int argc, char **argv) {
    int json = 0;
    int rest = 0;
    char **args_left = malloc(sizeof(char *) * (size_t)(argc + 1));
    if (args_left == NULL) return 1;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else
            args_left[rest++] = argv[i];
    }
    crl_config_t *c;
    crl_config_args_t args;
    int rc = load("hwinfo", rest, args_left, &c, &args);
    free(args_left);
    if (rc >= 0) return rc;
    crl_hw_info_t hw;
    crl_hw_detect(&hw);
    crl_log_set_level(CRL_LOG_ERROR); /* the kernel choice's log line is not part of the report */
    const crl_kernels_t *k = crl_server_choose_kernels(c);
    crl_buf out;
    crl_buf_init(&out, 1u << 20);
    if (json)
        crl_hw_write_json(&hw, k->name, &out);
    else
        crl_hw_write_text(&hw, k->name, &out);
    fwrite(out.data, 1, out.len, stdout);
    if (json) fputc('\n', stdout);
    crl_buf_free(&out);
    free(c);
    return 0;
}
