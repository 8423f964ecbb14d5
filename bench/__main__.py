from bench.cli import main

if __name__ == "__main__":  # worker processes (spawned or forked) import this module without running it
    raise SystemExit(main())
