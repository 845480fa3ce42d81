#!/usr/bin/perl
# tap9p.pl: logging TCP relay for golden 9P captures, and a frame checker.
#
# usage: tap9p.pl relay LISTEN_PORT TARGET_PORT OUTPREFIX TTL [READYFILE]
#   Listens on 127.0.0.1:LISTEN_PORT only; each accepted connection N (1, 2, ... in
#   accept order) is relayed to 127.0.0.1:TARGET_PORT and its raw bytes are appended to
#   OUTPREFIX-cN.c2s (client->server) and OUTPREFIX-cN.s2c (server->client), unchanged.
#   Any number of concurrent connections (one process, non-blocking, select loop).
#   Exits by itself after TTL seconds. On SIGTERM/SIGINT it stops accepting, keeps
#   relaying until its connections have ended (at most 5 s more), then exits. Writes
#   READYFILE (if given; content: its pid) once it listens.
#   env TAP_BPS=N  limit each direction of each connection to about N bytes/s (slows a
#                  load generator so a fixed-time run stays small; bytes are unchanged)
#
# usage: tap9p.pl check [-q] FILE...
#   Walks each file frame by frame (size[4] little-endian, type[1], tag[2]); prints
#   "ok FILE BYTES bytes N frames [type:count ...]"; exit 1 if any file is not a whole number
#   of frames (or has a frame shorter than 7 bytes), or if a .c2s file does not begin
#   with Tversion (100, tag 0xFFFF) or a .s2c file with Rversion (101) / Rlerror (7) /
#   Rerror (107).
#
# usage: tap9p.pl hist FILE...    histogram of type bytes over all FILEs, with names,
#                                 and of Rlerror ecodes
use strict; use warnings;
use IO::Socket::INET; use IO::Select; use Socket qw(IPPROTO_TCP TCP_NODELAY);
use POSIX (); use Errno qw(EAGAIN EWOULDBLOCK EINTR); use Time::HiRes qw(time sleep);

my %NAME = (
  6 => 'Tlerror', 7 => 'Rlerror', 8 => 'Tstatfs', 9 => 'Rstatfs', 12 => 'Tlopen',
  13 => 'Rlopen', 14 => 'Tlcreate', 15 => 'Rlcreate', 16 => 'Tsymlink', 17 => 'Rsymlink',
  18 => 'Tmknod', 19 => 'Rmknod', 20 => 'Trename', 21 => 'Rrename', 22 => 'Treadlink',
  23 => 'Rreadlink', 24 => 'Tgetattr', 25 => 'Rgetattr', 26 => 'Tsetattr',
  27 => 'Rsetattr', 30 => 'Txattrwalk', 31 => 'Rxattrwalk', 32 => 'Txattrcreate',
  33 => 'Rxattrcreate', 40 => 'Treaddir', 41 => 'Rreaddir', 50 => 'Tfsync',
  51 => 'Rfsync', 52 => 'Tlock', 53 => 'Rlock', 54 => 'Tgetlock', 55 => 'Rgetlock',
  70 => 'Tlink', 71 => 'Rlink', 72 => 'Tmkdir', 73 => 'Rmkdir', 74 => 'Trenameat',
  75 => 'Rrenameat', 76 => 'Tunlinkat', 77 => 'Runlinkat', 100 => 'Tversion',
  101 => 'Rversion', 102 => 'Tauth', 103 => 'Rauth', 104 => 'Tattach', 105 => 'Rattach',
  106 => 'Terror', 107 => 'Rerror', 108 => 'Tflush', 109 => 'Rflush', 110 => 'Twalk',
  111 => 'Rwalk', 112 => 'Topen', 113 => 'Ropen', 114 => 'Tcreate', 115 => 'Rcreate',
  116 => 'Tread', 117 => 'Rread', 118 => 'Twrite', 119 => 'Rwrite', 120 => 'Tclunk',
  121 => 'Rclunk', 122 => 'Tremove', 123 => 'Rremove', 124 => 'Tstat', 125 => 'Rstat',
  126 => 'Twstat', 127 => 'Rwstat',
);

my $mode = shift // '';
if ($mode eq 'relay') { relay(@ARGV) }
elsif ($mode eq 'check') { exit check(@ARGV) }
elsif ($mode eq 'hist') { exit hist(@ARGV) }
else { die "usage: tap9p.pl relay LISTEN_PORT TARGET_PORT OUTPREFIX TTL [READYFILE] | check [-q] FILE... | hist FILE...\n" }

# frames FILE -> (bytes, error or '', [ [type, tag, size], ... ])
sub frames {
  my ($f) = @_;
  open(my $fh, '<:raw', $f) or return (0, "cannot open: $!", []);
  local $/; my $d = <$fh> // ''; close $fh;
  my ($off, @fr) = (0);
  while ($off < length $d) {
    return (length $d, "truncated size field at offset $off", \@fr) if length($d) - $off < 4;
    my $sz = unpack('V', substr($d, $off, 4));
    return (length $d, "frame size $sz < 7 at offset $off", \@fr) if $sz < 7;
    return (length $d, "frame at offset $off (size $sz) runs past end (" . length($d) . ")", \@fr)
      if $off + $sz > length $d;
    my ($type, $tag) = unpack('Cv', substr($d, $off + 4, 3));
    my $ecode = ($type == 7 && $sz >= 11) ? unpack('V', substr($d, $off + 7, 4)) : undef;
    push @fr, [$type, $tag, $sz, $ecode];
    $off += $sz;
  }
  return (length $d, '', \@fr);
}

sub check {
  my $q = (@_ && $_[0] eq '-q') ? shift : '';
  my $bad = 0;
  for my $f (@_) {
    my ($n, $err, $fr) = frames($f);
    if (!$err && !@$fr) { $err = 'empty' }
    if (!$err && $f =~ /\.c2s$/ && !($fr->[0][0] == 100 && $fr->[0][1] == 0xffff)) {
      $err = "first frame is type $fr->[0][0] tag $fr->[0][1], not Tversion tag NOTAG";
    }
    if (!$err && $f =~ /\.s2c$/ && !grep { $fr->[0][0] == $_ } 101, 7, 107) {
      $err = "first frame is type $fr->[0][0], not Rversion/Rlerror/Rerror";
    }
    my %h; $h{$_->[0]}++ for @$fr;
    my $hs = join(' ', map { "$_:$h{$_}" } sort { $a <=> $b } keys %h);
    if ($err) { $bad = 1; printf "BAD %s: %d bytes, %d whole frames: %s\n", $f, $n, scalar @$fr, $err }
    elsif (!$q) { printf "ok %s %d bytes %d frames [%s]\n", $f, $n, scalar @$fr, $hs }
  }
  return $bad;
}

sub hist {
  my (%h, %e, $bad);
  for my $f (@_) {
    my ($n, $err, $fr) = frames($f); $bad = 1 if $err;
    for (@$fr) { $h{$_->[0]}++; $e{$_->[3]}++ if defined $_->[3] }
  }
  printf "%4d %-12s %d\n", $_, $NAME{$_} // '?', $h{$_} for sort { $a <=> $b } keys %h;
  printf "Rlerror ecodes: %s\n", join(' ', map { local $! = $_; "$_ ($!):$e{$_}" } sort { $a <=> $b } keys %e) if %e;
  return $bad ? 1 : 0;
}

sub relay {
  my ($lport, $tport, $prefix, $ttl, $ready) = @_;
  defined $ttl && $ttl =~ /^\d+$/ or die "usage: tap9p.pl relay LISTEN_PORT TARGET_PORT OUTPREFIX TTL [READYFILE]\n";
  my $bps = $ENV{TAP_BPS} || 0;
  my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $lport, Listen => 64,
    ReuseAddr => 1, Blocking => 0) or die "tap9p: listen 127.0.0.1:$lport: $!\n";
  my $deadline = time + $ttl;
  my $stop = 0;
  $SIG{TERM} = $SIG{INT} = sub { $stop = 1 };
  $SIG{PIPE} = 'IGNORE';
  if (defined $ready) { open(my $r, '>', $ready) or die "tap9p: $ready: $!\n"; print $r "$$\n"; close $r }
  my $nconn = 0;
  # per direction: { in => sock, out => sock, buf => '', log => fh, eof => 0, t0, bytes }
  my @dirs;
  my %conn_of;    # fileno -> [dir reading from it, dir writing to it]
  my $drain;      # after SIGTERM: stop accepting, relay until all connections end (<= 5 s)
  while (time < $deadline) {
    if ($stop) { $drain //= time + 5; last if !@dirs || time > $drain }
    my $rs = IO::Select->new(); my $ws = IO::Select->new();
    $rs->add($l) if !$stop;
    my $now = time; my $wait = 0.5;
    for my $d (@dirs) {
      next if $d->{done};
      my $throttled = $bps && $d->{bytes} > ($now - $d->{t0}) * $bps;
      if ($throttled) { my $w = $d->{bytes} / $bps - ($now - $d->{t0}); $wait = $w if $w < $wait }
      $rs->add($d->{in}) if !$d->{eof} && length($d->{buf}) < (1 << 20) && !$throttled;
      $ws->add($d->{out}) if length $d->{buf};
    }
    $wait = 0.01 if $wait < 0.01;
    my ($r, $w) = IO::Select->select($rs, $ws, undef, $wait);
    for my $fh (@{ $w || [] }) {
      for my $d (grep { !$_->{done} && $_->{out} == $fh && length $_->{buf} } @dirs) {
        my $n = syswrite($fh, $d->{buf});
        if (defined $n) { substr($d->{buf}, 0, $n, '') }
        elsif ($! != EAGAIN && $! != EWOULDBLOCK && $! != EINTR) { kill_conn($d->{conn}, \@dirs) }
      }
    }
    for my $fh (@{ $r || [] }) {
      if ($fh == $l) {
        my $c = $l->accept or next;
        $nconn++;
        my $t = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $tport);
        if (!$t) { warn "tap9p: connect 127.0.0.1:$tport: $!\n"; close $c; next }
        $_->blocking(0) for $c, $t;
        setsockopt($_, IPPROTO_TCP, TCP_NODELAY, 1) for $c, $t;
        my $conn = { id => $nconn, socks => [$c, $t] };
        for ([$c, $t, 'c2s'], [$t, $c, 's2c']) {
          my ($in, $out, $sfx) = @$_;
          open(my $log, '>:raw', "$prefix-c$nconn.$sfx") or die "tap9p: $prefix-c$nconn.$sfx: $!\n";
          push @dirs, { in => $in, out => $out, buf => '', log => $log, eof => 0, conn => $conn,
                        t0 => time, bytes => 0 };
        }
        next;
      }
      for my $d (grep { !$_->{done} && !$_->{eof} && $_->{in} == $fh } @dirs) {
        my $n = sysread($fh, my $b, 65536);
        if (!defined $n) {
          next if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
          kill_conn($d->{conn}, \@dirs); next;
        }
        if ($n == 0) { $d->{eof} = 1; next }
        syswrite($d->{log}, $b) == $n or die "tap9p: log write: $!\n";
        $d->{buf} .= $b; $d->{bytes} += $n;
      }
    }
    # a direction at EOF with nothing left to send: half-close; both done: close
    for my $d (@dirs) {
      next if $d->{done} || !$d->{eof} || length $d->{buf};
      shutdown($d->{out}, 1); $d->{done} = 1; close $d->{log};
    }
    my %live; $live{$_->{conn}{id}} ||= !$_->{done} for @dirs;
    for my $d (grep { !$live{$_->{conn}{id}} } @dirs) { close $_ for @{ $d->{conn}{socks} } }
    @dirs = grep { $live{$_->{conn}{id}} } @dirs;
  }
  # TTL or signal: logs are written unbuffered, so they hold every byte relayed so far
  close $_->{log} for @dirs;
  POSIX::_exit(0);
}

sub kill_conn {
  my ($conn, $dirs) = @_;
  for my $d (grep { $_->{conn} == $conn } @$dirs) { $d->{eof} = 1; $d->{buf} = ''; }
}
