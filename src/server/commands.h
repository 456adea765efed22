/* commands.h: the subcommands of the carlarl binary. Each returns the process exit code:
 * 0 success, 1 runtime failure, 2 bad configuration or usage. */
#ifndef CRL_SERVER_COMMANDS_H
#define CRL_SERVER_COMMANDS_H

int crl_cmd_serve(int argc, char **argv);
int crl_cmd_predict(int argc, char **argv);
int crl_cmd_config(int argc, char **argv);
int crl_cmd_hwinfo(int argc, char **argv);
int crl_cmd_check(int argc, char **argv);

#endif
