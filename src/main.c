/* main.c: the carlarl command: subcommand dispatch only; behaviour lives in src/<module>/. */
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "server/offline.h"
#include "server/options.h"
#include "server/server.h"

static void usage(FILE *f) {
    fputs("usage: carlarl <command> [options]\n"
          "\n"
          "commands:\n"
          "  serve     serve the policy over HTTP (see carlarl serve --help)\n"
          "  predict   offline inference: a /predict JSON body on stdin, the response on stdout\n"
          "  version   print the version\n"
          "\n"
          "Run 'carlarl <command> --help' for a command's options.\n",
          f);
}

static int serve_or_predict(int argc, char **argv, int offline) {
    crl_server_options_t o;
    crl_err err = {{0}};
    int help = 0;
    crl_server_options_defaults(&o);
    crl_status st = crl_server_options_from_env(&o, &err);
    if (st == CRL_OK) st = crl_server_options_from_args(&o, argc, argv, &help, &err);
    if (st != CRL_OK) {
        fprintf(stderr, "carlarl %s: %s\n", offline ? "predict" : "serve", err.msg);
        crl_server_options_free(&o);
        return 2;
    }
    if (help) {
        if (offline)
            fputs("usage: carlarl predict [--artifact-dir DIR] [--model-version V] < body.json\n"
                  "Reads one POST /predict body from stdin and writes the response JSON to "
                  "stdout;\nerrors are written as the server's error envelope with exit code 1.\n",
                  stdout);
        else
            crl_server_options_usage(stdout);
        crl_server_options_free(&o);
        return 0;
    }
    st = offline ? crl_offline_predict(&o, stdin, stdout, &err) : crl_server_run(&o, &err);
    if (st != CRL_OK && *err.msg) fprintf(stderr, "carlarl: %s\n", err.msg);
    crl_server_options_free(&o);
    return st == CRL_OK ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "serve") == 0) return serve_or_predict(argc - 2, argv + 2, 0);
    if (strcmp(argv[1], "predict") == 0) return serve_or_predict(argc - 2, argv + 2, 1);
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("carlarl %s\n", CRL_VERSION);
        return 0;
    }
    fprintf(stderr, "carlarl: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
