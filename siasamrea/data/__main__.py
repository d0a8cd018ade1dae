from siasamrea.data.cli import main

raise SystemExit(main())
