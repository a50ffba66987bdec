"""python -m basicsr_sgenet.app (or sgenet-app): serve the deblur-and-compare page.

Served on 127.0.0.1 (this machine only) unless --host names another address: the page
runs models on files and weights paths typed into it, so anyone who can reach it can
make this machine read those files and use its processors.
"""
import argparse
import sys

from basicsr_sgenet.integration.errors import status_or_user_error

LOCAL_HOSTS = ('127.0.0.1', 'localhost', '::1')


def build_parser():
    parser = argparse.ArgumentParser(prog='python -m basicsr_sgenet.app',
                                     description='A local web page to deblur images and compare models side by side.')
    parser.add_argument('--host', default='127.0.0.1',
                        help='address to serve on (default 127.0.0.1: this machine only; another address, e.g. '
                        '0.0.0.0, lets anyone who can reach it use the page, and prints a warning)')
    parser.add_argument('--port', type=int, default=7860, help='port (default 7860)')
    parser.add_argument('--models', default='',
                        help='the model list the page starts with, one per line (see the page), e.g. '
                        '\'NAFNet https://host/nafnet.pth\'')
    return parser


def serve(args):
    from basicsr_sgenet.app import page
    page.import_gradio()  # a missing extra is one line, before anything else
    if args.host not in LOCAL_HOSTS:
        print(f'warning: serving on {args.host}, not only this machine: anyone who can reach {args.host}:{args.port} '
              'can run models on this machine and make it read any file it can read (weights paths)',
              file=sys.stderr, flush=True)
    print(f'Serving the page on http://{args.host}:{args.port} (Ctrl+C to stop)', flush=True)
    page.serve(args.host, args.port, args.models, block=True)
    return 0


def main(argv=None):
    return status_or_user_error(serve, build_parser().parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
