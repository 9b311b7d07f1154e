// Independent verifier of signed voluntary exits and BLS-to-execution
// changes, for ethkeygen's tests. It shares no code with the Go side: SSZ
// roots come from @chainsafe/ssz, BLS verification from @noble/curves, and
// the domain rules are written here from the consensus specs:
//   exit:       compute_domain(DOMAIN_VOLUNTARY_EXIT, CAPELLA_FORK_VERSION, gvr)  (EIP-7044)
//   bls change: compute_domain(DOMAIN_BLS_TO_EXECUTION_CHANGE, GENESIS_FORK_VERSION, gvr)
// Input (stdin): a JSON list of items; output (stdout): a JSON list of
// {ok, error, domain, signing_root}, one per item.
import { readFileSync } from 'node:fs';
import { ByteVectorType, ContainerType, UintBigintType } from '@chainsafe/ssz';
import { bls12_381 } from '@noble/curves/bls12-381.js';

const Bytes4 = new ByteVectorType(4);
const Bytes20 = new ByteVectorType(20);
const Bytes32 = new ByteVectorType(32);
const Bytes48 = new ByteVectorType(48);
const Uint64 = new UintBigintType(8);
const ForkData = new ContainerType({ currentVersion: Bytes4, genesisValidatorsRoot: Bytes32 });
const SigningData = new ContainerType({ objectRoot: Bytes32, domain: Bytes32 });
const VoluntaryExit = new ContainerType({ epoch: Uint64, validatorIndex: Uint64 });
const BLSToExecutionChange = new ContainerType({ validatorIndex: Uint64, fromBlsPubkey: Bytes48, toExecutionAddress: Bytes20 });

const DOMAIN_VOLUNTARY_EXIT = '04000000';
const DOMAIN_BLS_TO_EXECUTION_CHANGE = '0a000000';
const DST = 'BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_';

function bytes(s, n, what) {
  if (typeof s !== 'string' || !/^0x[0-9a-f]*$/.test(s) || s.length !== 2 + 2 * n) {
    throw new Error(`${what}: want 0x and ${n} bytes of lowercase hex`);
  }
  return Uint8Array.from(Buffer.from(s.slice(2), 'hex'));
}

function uint(s, what) {
  if (typeof s !== 'string' || !/^(0|[1-9][0-9]*)$/.test(s)) throw new Error(`${what}: not a decimal string`);
  const v = BigInt(s);
  if (v >= 1n << 64n) throw new Error(`${what}: over 64 bits`);
  return v;
}

const hex = (b) => '0x' + Buffer.from(b).toString('hex');

function computeDomain(type, forkVersion, gvr) {
  const root = ForkData.hashTreeRoot({ currentVersion: forkVersion, genesisValidatorsRoot: gvr });
  const d = new Uint8Array(32);
  d.set(Buffer.from(type, 'hex'), 0);
  d.set(root.subarray(0, 28), 4);
  return d;
}

function check(item) {
  const gvr = bytes(item.chain.genesis_validators_root, 32, 'genesis_validators_root');
  // The fork version each message is signed under, by the spec's rule, unless
  // the test asks for a deliberately wrong one ("genesis" for an exit,
  // "capella" for a BLS change).
  let domain, root, pubkey;
  const m = item.message;
  if (item.kind === 'exit') {
    const fork = item.domain_fork === 'genesis' ? item.chain.genesis_fork_version : item.chain.capella_fork_version;
    domain = computeDomain(DOMAIN_VOLUNTARY_EXIT, bytes(fork, 4, 'fork version'), gvr);
    root = VoluntaryExit.hashTreeRoot({ epoch: uint(m.epoch, 'epoch'), validatorIndex: uint(m.validator_index, 'validator_index') });
    pubkey = bytes(item.pubkey, 48, 'pubkey');
  } else if (item.kind === 'bls_change') {
    const fork = item.domain_fork === 'capella' ? item.chain.capella_fork_version : item.chain.genesis_fork_version;
    domain = computeDomain(DOMAIN_BLS_TO_EXECUTION_CHANGE, bytes(fork, 4, 'fork version'), gvr);
    pubkey = bytes(m.from_bls_pubkey, 48, 'from_bls_pubkey');
    root = BLSToExecutionChange.hashTreeRoot({
      validatorIndex: uint(m.validator_index, 'validator_index'),
      fromBlsPubkey: pubkey,
      toExecutionAddress: bytes(m.to_execution_address.toLowerCase(), 20, 'to_execution_address'),
    });
  } else {
    throw new Error(`unknown kind ${item.kind}`);
  }
  const signingRoot = SigningData.hashTreeRoot({ objectRoot: root, domain });
  const sig = bytes(item.signature, 96, 'signature');
  const bls = bls12_381.longSignatures;
  const ok = bls.verify(sig, bls.hash(signingRoot, DST), pubkey);
  return { ok, error: ok ? '' : 'signature does not verify', domain: hex(domain), signing_root: hex(signingRoot) };
}

const items = JSON.parse(readFileSync(0, 'utf8'));
const out = items.map((item) => {
  try {
    return check(item);
  } catch (e) {
    return { ok: false, error: String(e && e.message ? e.message : e), domain: '', signing_root: '' };
  }
});
process.stdout.write(JSON.stringify(out));
