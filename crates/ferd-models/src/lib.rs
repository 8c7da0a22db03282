//! Classifiers and the generator of FERD (ResNet, PreAct ResNet, WideResNet, MobileNet-V2, small
//! 28x28 nets, the DCGAN-style generator) with split forwards, BatchNorm statistics capture and
//! PyTorch weight import.
//!
//! Not implemented yet: this crate is the workspace slot for the models issue. It exports
//! nothing, so that no caller can mistake it for a working model zoo.
