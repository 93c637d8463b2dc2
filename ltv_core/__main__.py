from ltv_core.cli import main

raise SystemExit(main())
