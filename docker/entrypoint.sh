#!/bin/sh
# Dataflow starts SDK containers with the Beam harness's own flags (--id, --provision_endpoint,
# ...): hand those to Beam's boot launcher. Everything else is a trainer invocation, which is
# what Vertex AI runs with the CustomJob's container args.
set -e
case " $* " in
  *" --provision_endpoint="*|*" --id="*) exec /opt/apache/beam/boot "$@" ;;
esac
exec python -m trainer.task "$@"
