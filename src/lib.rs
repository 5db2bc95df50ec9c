//! mod_twofactor
