// moelab-cli: the headless face of moelab (cli_main in moelab_cli.cpp).
#include "cli_main.h"

int main(int argc, char** argv) { return moe::cli::cli_main(argc, argv); }
