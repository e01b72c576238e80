from convt_conformance.cli.main import main

raise SystemExit(main())
