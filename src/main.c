/* main.c: the carlarl command: subcommand dispatch only; behaviour lives in src/<module>/. */
#include <stdio.h>
#include <string.h>

#include "bench/bench.h"
#include "server/commands.h"

static void usage(FILE *f) {
    fputs("usage: carlarl <command> [options]\n"
          "\n"
          "commands:\n"
          "  serve     serve the policy over HTTP\n"
          "  predict   offline inference: a /predict JSON body on stdin, the response on stdout\n"
          "  config    print the effective configuration (--check FILE validates a file)\n"
          "  hwinfo    CPU features, cores, caches, NUMA, GPUs, chosen kernels (--json)\n"
          "  check     validate an artifact version directory and time its forward pass\n"
          "  bench     load-test a server: throughput, latency percentiles, errors, server CPU\n"
          "  version   print the version\n"
          "\n"
          "Run 'carlarl <command> --help' for a command's options.\n",
          f);
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "serve") == 0) return crl_cmd_serve(argc - 2, argv + 2);
    if (strcmp(cmd, "predict") == 0) return crl_cmd_predict(argc - 2, argv + 2);
    if (strcmp(cmd, "config") == 0) return crl_cmd_config(argc - 2, argv + 2);
    if (strcmp(cmd, "hwinfo") == 0) return crl_cmd_hwinfo(argc - 2, argv + 2);
    if (strcmp(cmd, "check") == 0) return crl_cmd_check(argc - 2, argv + 2);
    if (strcmp(cmd, "bench") == 0) return crl_cmd_bench(argc - 2, argv + 2);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("carlarl %s\n", CRL_VERSION);
        return 0;
    }
    fprintf(stderr, "carlarl: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
