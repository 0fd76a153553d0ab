from panoflow.cli import main

raise SystemExit(main())
